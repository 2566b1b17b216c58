package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/testing/fakegar"
)

const testRepo = "asia-northeast2-docker.pkg.dev/proj/backend/server"

var testDigest, testDigest2 = "sha256:" + strings.Repeat("01", 32), "sha256:" + strings.Repeat("fe", 32)

func TestTagDigest(t *testing.T) {
	t.Parallel()
	const nested = "us-docker.pkg.dev/proj/repo/team/api/server"
	tests := []struct {
		name       string
		setup      func(s *fakegar.Server)
		repository string
		tag        string
		want       string // digest on success; "" with no error: not found
		wantErr    error  // nil: success
		errText    string
	}{
		{name: "found", repository: testRepo, tag: "latest", want: testDigest,
			setup: func(s *fakegar.Server) { s.SetTag(testRepo, "latest", testDigest) }},
		{name: "nested package name", repository: nested, tag: "v1.2.3", want: testDigest2,
			setup: func(s *fakegar.Server) { s.SetTag(nested, "v1.2.3", testDigest2) }},
		{name: "domain-scoped project", repository: "europe-docker.pkg.dev/example.com/proj/repo/app", tag: "main", want: testDigest,
			setup: func(s *fakegar.Server) {
				s.SetTag("europe-docker.pkg.dev/example.com/proj/repo/app", "main", testDigest)
			}},
		{name: "not found", repository: testRepo, tag: "latest",
			setup: func(s *fakegar.Server) { s.SetTag(testRepo, "other", testDigest) }},
		{name: "deleted tag", repository: testRepo, tag: "latest",
			setup: func(s *fakegar.Server) {
				s.SetTag(testRepo, "latest", testDigest)
				s.DeleteTag(testRepo, "latest")
			}},
		{name: "unavailable", repository: testRepo, tag: "latest", wantErr: ErrTransient, errText: "Unavailable",
			setup: func(s *fakegar.Server) {
				s.SetTag(testRepo, "latest", testDigest)
				s.Fail(codes.Unavailable)
			}},
		{name: "resource exhausted", repository: testRepo, tag: "latest", wantErr: ErrTransient,
			setup: func(s *fakegar.Server) { s.Fail(codes.ResourceExhausted) }},
		{name: "internal", repository: testRepo, tag: "latest", wantErr: ErrTransient,
			setup: func(s *fakegar.Server) { s.Fail(codes.Internal) }},
		{name: "permission denied is not transient", repository: testRepo, tag: "latest", errText: "PermissionDenied",
			setup: func(s *fakegar.Server) { s.Fail(codes.PermissionDenied) }},
		{name: "version is not a digest", repository: testRepo, tag: "latest", errText: "lowercase hex",
			setup: func(s *fakegar.Server) {
				s.SetVersion(testRepo, "latest", "projects/proj/locations/asia-northeast2/repositories/backend/packages/server/versions/sha256:ABC")
			}},
		{name: "version is not a version name", repository: testRepo, tag: "latest", errText: "not a version name",
			setup: func(s *fakegar.Server) { s.SetVersion(testRepo, "latest", "garbage") }},
		{name: "not an Artifact Registry host", repository: "gcr.io/proj/server", tag: "latest", wantErr: gar.ErrInvalidReference, errText: "not an Artifact Registry docker host"},
		{name: "no image", repository: "us-docker.pkg.dev/proj/repo", tag: "latest", wantErr: gar.ErrInvalidReference},
		{name: "repository with tag", repository: testRepo + ":latest", tag: "latest", wantErr: gar.ErrInvalidReference},
		{name: "bad tag", repository: testRepo, tag: "a/b", wantErr: gar.ErrInvalidReference},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := fakegar.Start(t)
			if tt.setup != nil {
				tt.setup(srv)
			}
			reg, err := New(t.Context(), srv.ClientOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Close() })
			got, ok, err := reg.TagDigest(t.Context(), tt.repository, tt.tag)
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil {
					t.Fatalf("TagDigest: %v", err)
				}
				if got != tt.want || ok != (tt.want != "") {
					t.Errorf("TagDigest = %q, %v; want %q", got, ok, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("TagDigest = %q; want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("TagDigest error = %v; want errors.Is %v", err, tt.wantErr)
			}
			if tt.wantErr != ErrTransient && errors.Is(err, ErrTransient) {
				t.Errorf("TagDigest error = %v is wrongly classified", err)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("TagDigest error = %q; want it to contain %q", err, tt.errText)
			}
		})
	}
}

func TestTagDigestDeadline(t *testing.T) {
	t.Parallel()
	srv := fakegar.Start(t)
	reg, err := New(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 0)
	defer cancel()
	if _, _, err := reg.TagDigest(ctx, testRepo, "latest"); !errors.Is(err, ErrTransient) {
		t.Errorf("TagDigest with an expired context: %v; want ErrTransient", err)
	}
}

func TestTagResourceName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		repository, tag, want string
	}{
		{testRepo, "latest", "projects/proj/locations/asia-northeast2/repositories/backend/packages/server/tags/latest"},
		{"us-docker.pkg.dev/p/r/team/api/server", "v1.2.3", "projects/p/locations/us/repositories/r/packages/team%2Fapi%2Fserver/tags/v1.2.3"},
		{"us-docker.pkg.dev/example.com/p/r/app", "main", "projects/example.com:p/locations/us/repositories/r/packages/app/tags/main"},
	}
	for _, tt := range tests {
		got, err := tagResourceName(tt.repository, tt.tag)
		if err != nil || got != tt.want {
			t.Errorf("tagResourceName(%q, %q) = %q, %v; want %q", tt.repository, tt.tag, got, err, tt.want)
		}
	}
}

func TestHasDigest(t *testing.T) {
	t.Parallel()
	srv := fakegar.Start(t)
	d1 := "sha256:" + strings.Repeat("1", 64)
	srv.SetTag(testRepo, "v1", d1)
	reg, err := New(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	tests := []struct {
		name       string
		repository string
		digest     string
		want       bool
		wantErr    error
	}{
		{"tagged version", testRepo, d1, true, nil},
		{"unknown version", testRepo, "sha256:" + strings.Repeat("2", 64), false, nil},
		{"malformed digest", testRepo, "sha256:xyz", false, gar.ErrInvalidReference},
		{"not an Artifact Registry host", "gcr.io/proj/server", d1, false, gar.ErrInvalidReference},
	}
	for _, tt := range tests {
		got, err := reg.HasDigest(t.Context(), tt.repository, tt.digest)
		if got != tt.want || (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("%s: HasDigest = %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
	srv.Fail(codes.Unavailable)
	if _, err := reg.HasDigest(t.Context(), testRepo, d1); !errors.Is(err, ErrTransient) {
		t.Errorf("HasDigest while unavailable: %v; want ErrTransient", err)
	}
}
