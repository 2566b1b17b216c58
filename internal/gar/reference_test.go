package gar

import (
	"errors"
	"strings"
	"testing"
)

const (
	testRepo    = "asia-northeast2-docker.pkg.dev/proj/backend/server"
	testDigest  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testDigest2 = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func TestParseReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ref      string
		wantRepo string
		wantTag  string
		wantDig  string
		wantErr  string // substring; "" means success
	}{
		{name: "GAR tag", ref: testRepo + ":latest", wantRepo: testRepo, wantTag: "latest"},
		{name: "GAR digest only", ref: testRepo + "@" + testDigest, wantRepo: testRepo, wantDig: testDigest},
		{name: "tag and digest", ref: testRepo + ":v1.2.3@" + testDigest, wantRepo: testRepo, wantTag: "v1.2.3", wantDig: testDigest},
		{name: "bare repository", ref: testRepo, wantRepo: testRepo},
		{name: "port in host with tag", ref: "localhost:5000/a/b:tag", wantRepo: "localhost:5000/a/b", wantTag: "tag"},
		{name: "port in host without tag", ref: "localhost:5000/a/b", wantRepo: "localhost:5000/a/b"},
		{name: "port in host with digest", ref: "registry.example.com:443/a/b@" + testDigest, wantRepo: "registry.example.com:443/a/b", wantDig: testDigest},
		{name: "IPv6 host", ref: "[::1]:5000/a:t", wantRepo: "[::1]:5000/a", wantTag: "t"},
		{name: "tag with dots and dashes", ref: testRepo + ":v1.2.3-rc.1", wantRepo: testRepo, wantTag: "v1.2.3-rc.1"},
		{name: "tag with underscores and caps", ref: testRepo + ":Build_42", wantRepo: testRepo, wantTag: "Build_42"},
		{name: "nested image path", ref: "us-docker.pkg.dev/proj/repo/team/api/server:main", wantRepo: "us-docker.pkg.dev/proj/repo/team/api/server", wantTag: "main"},
		{name: "path separators", ref: "gcr.io/my-proj/my_image.v2__x:1", wantRepo: "gcr.io/my-proj/my_image.v2__x", wantTag: "1"},
		{name: "128 character tag", ref: testRepo + ":" + strings.Repeat("a", 128), wantRepo: testRepo, wantTag: strings.Repeat("a", 128)},

		{name: "empty", ref: "", wantErr: "empty repository"},
		{name: "no host", ref: "server:latest", wantErr: "no registry host"},
		{name: "first component is not a host", ref: "backend/server:latest", wantErr: "not a registry host"},
		{name: "uppercase path (SPEC §3 example)", ref: "gcr.io/PROJECT/server:v1", wantRepo: "gcr.io/PROJECT/server", wantTag: "v1"},
		{name: "separator at the end of a component", ref: "gcr.io/proj-/server", wantErr: `path component "proj-"`},
		{name: "trailing slash", ref: "gcr.io/proj/", wantErr: "path component"},
		{name: "double slash", ref: "gcr.io//proj", wantErr: "path component"},
		{name: "uppercase hex", ref: testRepo + "@" + strings.ToUpper(testDigest[:7]) + strings.ToUpper(testDigest[7:]), wantErr: "digest"},
		{name: "uppercase hex only", ref: testRepo + "@sha256:" + strings.ToUpper(testDigest[7:]), wantErr: "lowercase hex"},
		{name: "short hex", ref: testRepo + "@" + testDigest[:70], wantErr: "digest"},
		{name: "long hex", ref: testRepo + "@" + testDigest + "0", wantErr: "digest"},
		{name: "sha512", ref: testRepo + "@sha512:" + strings.Repeat("ab", 64), wantErr: "digest"},
		{name: "digest without algorithm", ref: testRepo + "@" + testDigest[7:], wantErr: "digest"},
		{name: "two digests", ref: testRepo + "@" + testDigest + "@" + testDigest, wantErr: "digest"},
		{name: "empty tag", ref: testRepo + ":", wantErr: "tag"},
		{name: "tag starting with dot", ref: testRepo + ":.hidden", wantErr: "tag"},
		{name: "tag starting with dash", ref: testRepo + ":-x", wantErr: "tag"},
		{name: "tag with slash-free junk", ref: testRepo + ":a+b", wantErr: "tag"},
		{name: "129 character tag", ref: testRepo + ":" + strings.Repeat("a", 129), wantErr: "tag"},
		{name: "only a digest", ref: "@" + testDigest, wantErr: "empty repository"},
		{name: "bad host", ref: "-bad-.example.com/a:b", wantErr: "not a registry host"},
		{name: "too long", ref: "gcr.io/" + strings.Repeat("a", 260), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo, tag, dig, err := ParseReference(tt.ref)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseReference(%q) = %q, %q, %q; want error containing %q", tt.ref, repo, tag, dig, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidReference) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseReference(%q) error = %v; want ErrInvalidReference containing %q", tt.ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tt.ref, err)
			}
			if repo != tt.wantRepo || tag != tt.wantTag || dig != tt.wantDig {
				t.Errorf("ParseReference(%q) = %q, %q, %q; want %q, %q, %q", tt.ref, repo, tag, dig, tt.wantRepo, tt.wantTag, tt.wantDig)
			}
		})
	}
}
