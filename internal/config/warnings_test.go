package config

import (
	"slices"
	"testing"
)

func TestWarnings(t *testing.T) {
	t.Parallel()
	const head = "git: {repo: /tmp/x}\nimages: [{name: server, repository: r.example/p/server}]\nenvironments:\n"
	for _, tc := range []struct {
		name string
		envs string
		want []string
	}{
		{"all rolling", "  - {name: dev, path: a, track: latest}\n  - {name: qa, path: b, track: qa}\n", nil},
		{"append alone", "  - {name: dev, path: a, track: latest, commit: append}\n  - {name: prod, path: b, release: {}}\n", nil},
		{"append on another branch", "  - {name: dev, path: a, track: latest}\n  - {name: qa, path: b, track: qa, commit: append, branch: qa}\n", nil},
		{"append and rolling on one branch", "  - {name: dev, path: a, track: latest}\n  - {name: qa, path: b, track: qa, commit: append}\n", []string{
			`environments[1] "qa" (commit: append) and environments[0] "dev" (commit: rolling) both write branch main: each append commit buries the rolling commit, so every push makes two commits; use one commit mode per branch, or give "qa" its own branch`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(head + tc.envs))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Warnings(); !slices.Equal(got, tc.want) {
				t.Errorf("Warnings() =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
