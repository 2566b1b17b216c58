package gitops

import (
	"testing"
	"time"
)

func TestBackupNames(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	const p = "refs/pinroll/backup/main/"
	for _, tc := range []struct {
		name     string
		existing []string
		want     string
	}{
		{"first", nil, p + "1700000000"},
		{"same second", []string{p + "1700000000"}, p + "1700000000-1"},
		{"third in the second", []string{p + "1700000000", p + "1700000000-1"}, p + "1700000000-2"},
		{"older only", []string{p + "1699999999"}, p + "1700000000"},
	} {
		m := map[string]string{}
		for _, e := range tc.existing {
			m[e] = "x"
		}
		if got := backupName(p, now, m); got != tc.want {
			t.Errorf("%s: backupName = %s, want %s", tc.name, got, tc.want)
		}
	}
}
