package fakegar

import (
	"testing"

	artifactregistry "cloud.google.com/go/artifactregistry/apiv1"
	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestGetTagNames checks the fake parses resource names like the real API:
// escaped package names work, unescaped slashes are InvalidArgument.
func TestGetTagNames(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	srv.SetTag("us-docker.pkg.dev/p/r/team/server", "latest", digest)
	c, err := artifactregistry.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	tests := []struct {
		name        string
		tagName     string
		wantCode    codes.Code
		wantVersion string
	}{
		{name: "escaped package", tagName: "projects/p/locations/us/repositories/r/packages/team%2Fserver/tags/latest",
			wantVersion: "projects/p/locations/us/repositories/r/packages/team%2Fserver/versions/" + digest},
		{name: "unescaped slash in package", tagName: "projects/p/locations/us/repositories/r/packages/team/server/tags/latest", wantCode: codes.InvalidArgument},
		{name: "wrong collection", tagName: "projects/p/regions/us/repositories/r/packages/team%2Fserver/tags/latest", wantCode: codes.InvalidArgument},
		{name: "empty segment", tagName: "projects/p/locations//repositories/r/packages/x/tags/latest", wantCode: codes.InvalidArgument},
		{name: "unknown tag", tagName: "projects/p/locations/us/repositories/r/packages/team%2Fserver/tags/v1", wantCode: codes.NotFound},
		{name: "other location", tagName: "projects/p/locations/eu/repositories/r/packages/team%2Fserver/tags/latest", wantCode: codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag, err := c.GetTag(t.Context(), &artifactregistrypb.GetTagRequest{Name: tt.tagName})
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("GetTag(%q) code = %v (%v); want %v", tt.tagName, got, err, tt.wantCode)
			}
			if err == nil && tag.GetVersion() != tt.wantVersion {
				t.Errorf("GetTag(%q).Version = %q; want %q", tt.tagName, tag.GetVersion(), tt.wantVersion)
			}
		})
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	srv.SetTag("us-docker.pkg.dev/p/r/app", "latest", digest)
	c, err := artifactregistry.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := &artifactregistrypb.GetTagRequest{Name: "projects/p/locations/us/repositories/r/packages/app/tags/latest"}

	srv.Fail(codes.Unavailable)
	if _, err := c.GetTag(t.Context(), req); status.Code(err) != codes.Unavailable {
		t.Fatalf("after Fail(Unavailable): %v", err)
	}
	srv.Fail(codes.OK)
	if _, err := c.GetTag(t.Context(), req); err != nil {
		t.Fatalf("after Fail(OK): %v", err)
	}
	if _, err := c.ListRepositories(t.Context(), &artifactregistrypb.ListRepositoriesRequest{Parent: "projects/p/locations/us"}).Next(); status.Code(err) != codes.Unimplemented {
		t.Errorf("ListRepositories: %v; want Unimplemented", err)
	}
}
