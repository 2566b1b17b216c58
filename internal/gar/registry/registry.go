// Package registry looks up image tags in Google Artifact Registry
// (cloud.google.com/go/artifactregistry/apiv1, GetTag): the digest a release's
// tag names, for releases published before pinroll heard of their image
// (SPEC §4.2). See
// https://cloud.google.com/artifact-registry/docs/reference/rpc/google.devtools.artifactregistry.v1#google.devtools.artifactregistry.v1.ArtifactRegistry.GetTag
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	artifactregistry "cloud.google.com/go/artifactregistry/apiv1"
	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pinroll/pinroll/internal/gar"
)

// ErrTransient means the call failed in a way worth retrying later
// (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL).
var ErrTransient = errors.New("transient Artifact Registry error")

// dockerHostSuffix ends the host of every Artifact Registry docker repository:
// LOCATION-docker.pkg.dev.
const dockerHostSuffix = "-docker.pkg.dev"

// Client resolves tags to digests through the Artifact Registry API
// (cloud.google.com/go/artifactregistry/apiv1, GetTag). It is safe for
// concurrent use.
type Client struct {
	client *artifactregistry.Client
}

// New connects to Artifact Registry over gRPC with
// artifactregistry.NewClient; opts are passed through (credentials, or an
// endpoint and option.WithoutAuthentication for a fake).
func New(ctx context.Context, opts ...option.ClientOption) (*Client, error) {
	c, err := artifactregistry.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("new Artifact Registry client: %w", err)
	}
	return &Client{client: c}, nil
}

// Close closes the connection to Artifact Registry.
func (r *Client) Close() error { return r.client.Close() }

// TagDigest returns the digest ("sha256:<64 hex>") tag points at in the
// docker repository LOCATION-docker.pkg.dev/PROJECT/REPO/PACKAGE, where
// PACKAGE may contain '/'. It calls GetTag on
// projects/PROJECT/locations/LOCATION/repositories/REPO/packages/PACKAGE/tags/TAG
// with the slashes of PACKAGE escaped as %2F, as the API requires.
//
// A missing tag (or package or repository: the API answers NOT_FOUND for all
// three) gives ok false and no error; UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED and INTERNAL give an error wrapping [ErrTransient]; a
// repository that is not an Artifact Registry docker path gives one wrapping
// [gar.ErrInvalidReference].
func (r *Client) TagDigest(ctx context.Context, repository, tag string) (digest string, ok bool, err error) {
	name, err := tagResourceName(repository, tag)
	if err != nil {
		return "", false, fmt.Errorf("resolve %s:%s: %w", repository, tag, err)
	}
	t, err := r.client.GetTag(ctx, &artifactregistrypb.GetTagRequest{Name: name})
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound:
			return "", false, nil
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal:
			return "", false, fmt.Errorf("get tag %s: %w: %w", name, ErrTransient, err)
		default:
			return "", false, fmt.Errorf("get tag %s: %w", name, err)
		}
	}
	digest, err = versionDigest(t.GetVersion())
	if err != nil {
		return "", false, fmt.Errorf("get tag %s: %w", name, err)
	}
	return digest, true, nil
}

// tagResourceName maps the docker path LOCATION-docker.pkg.dev/PROJECT/REPO/PKG
// and a tag to the API's resource name
// projects/PROJECT/locations/LOCATION/repositories/REPO/packages/PKG/tags/TAG,
// escaping '/' in PKG as %2F. A domain-scoped project example.com:p appears in
// docker paths as example.com/p.
func tagResourceName(repository, tag string) (string, error) {
	if err := gar.ValidateTag(tag); err != nil {
		return "", err
	}
	pkg, err := packageResourceName(repository)
	if err != nil {
		return "", err
	}
	return pkg + "/tags/" + tag, nil
}

// HasDigest reports whether the docker repository
// LOCATION-docker.pkg.dev/PROJECT/REPO/PACKAGE holds the version digest
// ("sha256:<64 hex>"). It calls GetVersion on
// projects/PROJECT/locations/LOCATION/repositories/REPO/packages/PACKAGE/versions/DIGEST
// (https://cloud.google.com/artifact-registry/docs/reference/rpc/google.devtools.artifactregistry.v1#google.devtools.artifactregistry.v1.ArtifactRegistry.GetVersion);
// NOT_FOUND is false without an error, and errors are classified as in
// [Client.TagDigest].
func (r *Client) HasDigest(ctx context.Context, repository, digest string) (bool, error) {
	if err := gar.ValidateDigest(digest); err != nil {
		return false, fmt.Errorf("look up %s@%s: %w", repository, digest, err)
	}
	pkg, err := packageResourceName(repository)
	if err != nil {
		return false, fmt.Errorf("look up %s@%s: %w", repository, digest, err)
	}
	name := pkg + "/versions/" + digest
	if _, err := r.client.GetVersion(ctx, &artifactregistrypb.GetVersionRequest{Name: name}); err != nil {
		switch status.Code(err) {
		case codes.NotFound:
			return false, nil
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal:
			return false, fmt.Errorf("get version %s: %w: %w", name, ErrTransient, err)
		default:
			return false, fmt.Errorf("get version %s: %w", name, err)
		}
	}
	return true, nil
}

// packageResourceName maps the docker path
// LOCATION-docker.pkg.dev/PROJECT/REPO/PKG to the API's resource name
// projects/PROJECT/locations/LOCATION/repositories/REPO/packages/PKG,
// escaping '/' in PKG as %2F.
func packageResourceName(repository string) (string, error) {
	if err := gar.ValidateRepository(repository); err != nil {
		return "", err
	}
	host, path, _ := strings.Cut(repository, "/")
	location, ok := strings.CutSuffix(host, dockerHostSuffix)
	if !ok || location == "" {
		return "", fmt.Errorf("%w: %q is not an Artifact Registry docker host (LOCATION%s)", gar.ErrInvalidReference, host, dockerHostSuffix)
	}
	parts := strings.Split(path, "/")
	if len(parts) >= 4 && strings.Contains(parts[0], ".") {
		parts = append([]string{parts[0] + ":" + parts[1]}, parts[2:]...)
	}
	if len(parts) < 3 {
		return "", fmt.Errorf("%w: %q is not LOCATION%s/PROJECT/REPOSITORY/IMAGE", gar.ErrInvalidReference, repository, dockerHostSuffix)
	}
	project, repo, pkg := parts[0], parts[1], strings.Join(parts[2:], "%2F")
	return "projects/" + project + "/locations/" + location + "/repositories/" + repo +
		"/packages/" + pkg, nil
}

// versionDigest extracts the digest from a version name
// projects/P/locations/L/repositories/R/packages/PKG/versions/sha256:HEX.
func versionDigest(version string) (string, error) {
	_, id, ok := strings.Cut(version, "/versions/")
	if !ok {
		return "", fmt.Errorf("tag points at %q, not a version name", version)
	}
	// The version id is URL-escaped like the rest of the name; a digest has
	// nothing to escape, but be tolerant of an escaped ':'.
	if u, err := url.PathUnescape(id); err == nil {
		id = u
	}
	if err := gar.ValidateDigest(id); err != nil {
		return "", fmt.Errorf("tag points at version %q: %w", version, err)
	}
	return id, nil
}
