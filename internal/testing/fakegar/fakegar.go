// Package fakegar is an in-process Artifact Registry for tests: a gRPC server
// on a loopback port that implements GetTag of
// google.devtools.artifactregistry.v1.ArtifactRegistry from an in-memory map.
//
// Like the real API it insists on well-formed resource names
// (projects/P/locations/L/repositories/R/packages/PKG/tags/T with any '/' in
// PKG escaped as %2F) and answers NOT_FOUND for unknown tags. Every other RPC
// answers UNIMPLEMENTED.
package fakegar

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/artifactregistry/apiv1/artifactregistrypb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Server is a running fake Artifact Registry. Its methods are safe for
// concurrent use.
type Server struct {
	tb   testing.TB
	addr string
	svc  *service
}

// Start starts a fake Artifact Registry on a loopback port and stops it when
// the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakegar: listen: %v", err)
	}
	svc := &service{tags: map[tagKey]string{}}
	srv := grpc.NewServer()
	artifactregistrypb.RegisterArtifactRegistryServer(srv, svc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when Stop is called
	}()
	tb.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return &Server{tb: tb, addr: lis.Addr().String(), svc: svc}
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// ClientOptions returns the options that point an Artifact Registry client
// (artifactregistry.NewClient, gar.NewRegistry) at the fake, without TLS or
// credentials.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// SetTag makes tag of the docker repository
// LOCATION-docker.pkg.dev/PROJECT/REPO/PACKAGE point at digest
// ("sha256:<hex>"). PACKAGE may contain '/'. A malformed repository fails the
// test.
func (s *Server) SetTag(repository, tag, digest string) {
	s.tb.Helper()
	k := s.key(repository, tag)
	s.svc.set(k, k.versionName(digest))
}

// SetVersion makes tag point at an arbitrary version name, valid or not, to
// test how clients handle odd answers.
func (s *Server) SetVersion(repository, tag, version string) {
	s.tb.Helper()
	s.svc.set(s.key(repository, tag), version)
}

// DeleteTag removes tag from repository, if it exists.
func (s *Server) DeleteTag(repository, tag string) {
	s.tb.Helper()
	s.svc.delete(s.key(repository, tag))
}

// Fail makes every following call fail with code (and a message naming it);
// Fail(codes.OK) makes calls succeed again.
func (s *Server) Fail(code codes.Code) {
	s.svc.mu.Lock()
	defer s.svc.mu.Unlock()
	s.svc.fail = code
}

func (s *Server) key(repository, tag string) tagKey {
	s.tb.Helper()
	k, err := dockerKey(repository, tag)
	if err != nil {
		s.tb.Fatalf("fakegar: %v", err)
	}
	return k
}

// tagKey identifies a tag by its unescaped parts.
type tagKey struct {
	project, location, repository, pkg, tag string
}

// versionName is the name of the version digest of k's package, with the
// package's slashes escaped as the API does.
func (k tagKey) versionName(digest string) string {
	return fmt.Sprintf("projects/%s/locations/%s/repositories/%s/packages/%s/versions/%s",
		k.project, k.location, k.repository, url.PathEscape(k.pkg), digest)
}

// dockerKey parses LOCATION-docker.pkg.dev/PROJECT/REPO/PACKAGE. A
// domain-scoped project example.com:p appears as example.com/p.
func dockerKey(repository, tag string) (tagKey, error) {
	host, path, _ := strings.Cut(repository, "/")
	location, ok := strings.CutSuffix(host, "-docker.pkg.dev")
	if !ok || location == "" {
		return tagKey{}, fmt.Errorf("%q: host is not LOCATION-docker.pkg.dev", repository)
	}
	parts := strings.Split(path, "/")
	if len(parts) >= 4 && strings.Contains(parts[0], ".") {
		parts = append([]string{parts[0] + ":" + parts[1]}, parts[2:]...)
	}
	if len(parts) < 3 || tag == "" {
		return tagKey{}, fmt.Errorf("%q:%q: want LOCATION-docker.pkg.dev/PROJECT/REPO/IMAGE and a tag", repository, tag)
	}
	for _, p := range parts {
		if p == "" {
			return tagKey{}, fmt.Errorf("%q: empty path component", repository)
		}
	}
	return tagKey{
		project:    parts[0],
		location:   location,
		repository: parts[1],
		pkg:        strings.Join(parts[2:], "/"),
		tag:        tag,
	}, nil
}

// service implements the gRPC ArtifactRegistry service.
type service struct {
	artifactregistrypb.UnimplementedArtifactRegistryServer

	mu   sync.Mutex
	tags map[tagKey]string // → version name
	fail codes.Code
}

func (s *service) set(k tagKey, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags[k] = version
}

func (s *service) delete(k tagKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tags, k)
}

// GetTag implements ArtifactRegistryServer.
func (s *service) GetTag(_ context.Context, req *artifactregistrypb.GetTagRequest) (*artifactregistrypb.Tag, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != codes.OK {
		return nil, status.Errorf(s.fail, "fakegar: told to fail with %v", s.fail)
	}
	k, err := parseTagName(req.GetName())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	v, ok := s.tags[k]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found: tag %q", req.GetName())
	}
	return &artifactregistrypb.Tag{Name: req.GetName(), Version: v}, nil
}

// GetVersion implements ArtifactRegistryServer: a version exists when a tag
// of its package points at it.
func (s *service) GetVersion(_ context.Context, req *artifactregistrypb.GetVersionRequest) (*artifactregistrypb.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != codes.OK {
		return nil, status.Errorf(s.fail, "fakegar: told to fail with %v", s.fail)
	}
	pkgName, _, ok := strings.Cut(req.GetName(), "/versions/")
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "invalid version name %q", req.GetName())
	}
	k, err := parseTagName(pkgName + "/tags/x")
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	for tk, v := range s.tags {
		if tk.project == k.project && tk.location == k.location && tk.repository == k.repository && tk.pkg == k.pkg &&
			tk.versionName(versionID(v)) == req.GetName() {
			return &artifactregistrypb.Version{Name: req.GetName()}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "Requested entity was not found: version %q", req.GetName())
}

// versionID is the last segment of a version name.
func versionID(name string) string {
	_, id, _ := strings.Cut(name, "/versions/")
	return id
}

// parseTagName parses
// projects/P/locations/L/repositories/R/packages/PKG/tags/T, where PKG and T
// are URL-escaped (so a '/' in PKG must appear as %2F).
func parseTagName(name string) (tagKey, error) {
	seg := strings.Split(name, "/")
	want := []string{"projects", "locations", "repositories", "packages", "tags"}
	if len(seg) != 2*len(want) {
		return tagKey{}, fmt.Errorf("invalid tag name %q: want projects/*/locations/*/repositories/*/packages/*/tags/* (escape '/' in a package name as %%2F)", name)
	}
	for i, w := range want {
		if seg[2*i] != w || seg[2*i+1] == "" {
			return tagKey{}, fmt.Errorf("invalid tag name %q: want %s/* at segment %d", name, w, 2*i+1)
		}
	}
	pkg, err := url.PathUnescape(seg[7])
	if err != nil {
		return tagKey{}, fmt.Errorf("invalid tag name %q: package: %v", name, err)
	}
	tag, err := url.PathUnescape(seg[9])
	if err != nil {
		return tagKey{}, fmt.Errorf("invalid tag name %q: tag: %v", name, err)
	}
	return tagKey{project: seg[1], location: seg[3], repository: seg[5], pkg: pkg, tag: tag}, nil
}
