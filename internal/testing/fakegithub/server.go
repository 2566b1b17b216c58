// Package fakegithub is an in-process fake of the GitHub API, backed by real
// git objects in go-git memory storage, for testing pinroll's github backend
// (internal/gitops/github) without a network.
//
// It serves exactly what that backend uses, with GitHub's own rules:
//
//   - GraphQL (POST /graphql, or /api/graphql as on GitHub Enterprise): the
//     Repository, Ref, Commit, Tree, TreeEntry and Blob types and the
//     updateRefs mutation of schema.graphql, parsed and validated by gqlparser;
//   - REST (under / or /api/v3): POST git/trees (inline content and sha
//     entries, base_tree), POST git/commits, POST and GET git/blobs, GET and
//     PATCH git/refs (a non-forced PATCH must fast-forward), and
//     POST /app/installations/{id}/access_tokens for GitHub App auth;
//   - an Authorization header on every call (401 "Bad credentials" otherwise),
//     X-GitHub-Request-Id and X-RateLimit-* headers on every answer;
//   - GitHub's secondary limits on content-generating requests (REST writes
//     and GraphQL mutations: 80 a minute, 500 an hour, [ContentLimits]),
//     refused with 403, Retry-After and GitHub's message, and counted by
//     [Server.RateLimited]; [Server.SetContentLimits] shrinks them for a
//     test or turns them off.
//
// Tests drive it with [Server.Commit] (a person's commit), read it back with
// [Server.Log] and [Server.File], count calls with [Server.Calls], and inject
// latency, 5xx answers, rate limits and foreign writers that move the branch
// between a client's read and its ref update.
package fakegithub

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// Keys of [Server.Calls], one per endpoint the fake serves.
const (
	// EndpointGraphQLQuery is a GraphQL query (the backend's read).
	EndpointGraphQLQuery = "graphql query"
	// EndpointGraphQLMutation is a GraphQL mutation (updateRefs).
	EndpointGraphQLMutation = "graphql mutation"
	// EndpointCreateTree is POST /repos/{owner}/{repo}/git/trees.
	EndpointCreateTree = "POST git/trees"
	// EndpointCreateCommit is POST /repos/{owner}/{repo}/git/commits.
	EndpointCreateCommit = "POST git/commits"
	// EndpointCreateBlob is POST /repos/{owner}/{repo}/git/blobs.
	EndpointCreateBlob = "POST git/blobs"
	// EndpointGetBlob is GET /repos/{owner}/{repo}/git/blobs/{sha}.
	EndpointGetBlob = "GET git/blobs"
	// EndpointGetRef is GET /repos/{owner}/{repo}/git/ref/{ref}.
	EndpointGetRef = "GET git/ref"
	// EndpointUpdateRef is PATCH /repos/{owner}/{repo}/git/refs/{ref}.
	EndpointUpdateRef = "PATCH git/refs"
	// EndpointAccessToken is POST /app/installations/{id}/access_tokens.
	EndpointAccessToken = "POST access_tokens"
	// EndpointUnknown is any other request (answered 404).
	EndpointUnknown = "unknown"
)

// DefaultRateLimit is the X-RateLimit-Limit the fake reports.
const DefaultRateLimit = 5000

// Server is a fake GitHub serving one repository.
type Server struct {
	srv    *httptest.Server
	owner  string
	repo   string
	branch string // the default branch
	token  string
	repoID string

	mu       sync.Mutex
	st       *memory.Storage
	calls    map[string]int
	total    int
	reqSeq   int
	latency  time.Duration
	faults   []*fault
	rate     rateState
	second   secondary
	hooks    []func()
	foreign  int // ref updates still to be preceded by a foreign commit
	staleTyp string
	humanSeq int
	// protected branches refuse updates that are not fast-forwards.
	protected map[plumbing.ReferenceName]bool

	apps   map[int64]*app          // by installation id
	issued map[string]installToken // installation tokens handed out
}

type rateState struct {
	limit     int
	remaining int
	reset     time.Time
	exhausted bool // set by ExhaustRateLimit until reset
}

type app struct {
	appID int64
	key   *rsa.PublicKey
}

type installToken struct {
	installationID int64
	expires        time.Time
}

type fault struct {
	f Fault
	n int
}

// Fault is an injected failure: the next matching requests are answered with
// it instead of being served.
type Fault struct {
	// Endpoint limits the fault to requests counted under this key of
	// [Server.Calls]; empty matches every API request (not token exchanges).
	Endpoint string
	// Status is the HTTP status to answer (e.g. 502, 403, 429).
	Status int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up), as GitHub does for secondary rate limits.
	RetryAfter time.Duration
	// RateLimitReset, when positive, answers X-RateLimit-Remaining: 0 with
	// X-RateLimit-Reset this far ahead, as GitHub does for primary limits.
	RateLimitReset time.Duration
	// Message is the JSON "message"; a default fitting Status when empty.
	Message string
}

// New starts a fake GitHub serving owner/repo whose branch has exactly one
// commit holding files. The server is closed when the test ends.
func New(t testing.TB, owner, repo, branch string, files map[string][]byte) *Server {
	t.Helper()
	s := &Server{
		owner:    owner,
		repo:     repo,
		branch:   branch,
		token:    "fake_pat_" + randHex(16),
		repoID:   "R_fake" + base64.RawURLEncoding.EncodeToString([]byte(owner+"/"+repo)),
		st:       memory.NewStorage(),
		calls:    map[string]int{},
		rate:     rateState{limit: DefaultRateLimit, remaining: DefaultRateLimit, reset: time.Now().Add(time.Hour)},
		second:   secondary{windows: append([]Window(nil), ContentLimits...)},
		staleTyp: "STALE_DATA",
		apps:     map[int64]*app{},
		issued:   map[string]installToken{},
	}
	s.mu.Lock()
	sha, err := s.writeCommit("Initial commit", files, nil, seedSignature(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))
	if err == nil {
		err = s.setRef(plumbing.NewBranchReferenceName(branch), sha)
	}
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("fakegithub: seed %s/%s: %v", owner, repo, err)
	}
	s.srv = httptest.NewServer(s.handler())
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the REST API base URL (what api.github.com is on GitHub.com). The
// same routes are also served under URL()+"/api/v3", with GraphQL at
// URL()+"/graphql" and URL()+"/api/graphql", so both GitHub.com and GitHub
// Enterprise URL layouts work.
func (s *Server) URL() string { return s.srv.URL }

// RepoURL is the repository's web URL, as a user would configure it.
func (s *Server) RepoURL() string { return "https://github.com/" + s.owner + "/" + s.repo }

// Token is the personal access token the fake accepts; generated per server,
// never a real secret.
func (s *Server) Token() string { return s.token }

// RepositoryID is the repository's GraphQL node ID.
func (s *Server) RepositoryID() string { return s.repoID }

// Client is an HTTP client for the fake (plain HTTP, no credentials).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Calls returns how many requests each endpoint received, by the Endpoint*
// keys, including rejected ones.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// TotalCalls returns how many requests the fake received.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// ResetCalls sets every call counter back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
}

// SetLatency delays every request by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Inject answers the next n requests matching f.Endpoint with f.
func (s *Server) Inject(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{f: f, n: n})
}

// FailNext answers the next n API requests with status (e.g. 502).
func (s *Server) FailNext(n, status int) { s.Inject(n, Fault{Status: status}) }

// RetryAfterNext answers the next API request with status (403 or 429) and
// Retry-After: d, as GitHub does for secondary rate limits.
func (s *Server) RetryAfterNext(status int, d time.Duration) {
	s.Inject(1, Fault{Status: status, RetryAfter: d})
}

// ExhaustRateLimit spends the primary rate limit: every API request until
// resetIn from now is answered as GitHub does (REST: 403 with
// X-RateLimit-Remaining: 0; GraphQL: 200 with a RATE_LIMITED error).
func (s *Server) ExhaustRateLimit(resetIn time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate.remaining = 0
	s.rate.exhausted = true
	s.rate.reset = time.Now().Add(resetIn)
}

// SetRateLimit sets the hourly primary rate limit and refills it, e.g. to a
// large number for benchmarks, whose call count grows with b.N.
func (s *Server) SetRateLimit(limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate.limit, s.rate.remaining, s.rate.exhausted = limit, limit, false
	s.rate.reset = time.Now().Add(time.Hour)
}

// OnBeforeRefUpdate registers f, called before every ref update (GraphQL
// updateRefs and REST PATCH git/refs) is checked, outside the fake's lock: f
// may call [Server.Commit] to play a person pushing in the meantime.
func (s *Server) OnBeforeRefUpdate(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, f)
}

// ForeignCommitsBeforeUpdate makes the next n ref updates each lose to a
// person's commit pushed to the default branch just before them.
func (s *Server) ForeignCommitsBeforeUpdate(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.foreign += n
}

// SetStaleErrorType sets the GraphQL error type updateRefs answers when a
// beforeOid does not match (default "STALE_DATA"), so clients can be tested
// against other wordings.
func (s *Server) SetStaleErrorType(typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staleTyp = typ
}

// RegisterApp accepts GitHub App credentials: JWTs signed by the private key
// of pub with issuer appID may exchange them for tokens of installationID.
func (s *Server) RegisterApp(appID, installationID int64, pub *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[installationID] = &app{appID: appID, key: pub}
}

// handler is the whole fake: request id, counting, latency, faults, auth,
// rate-limit headers, then routing.
func (s *Server) handler() http.Handler {
	rest := http.NewServeMux()
	rest.HandleFunc("POST /repos/{owner}/{repo}/git/trees", s.repoScoped(s.createTree))
	rest.HandleFunc("POST /repos/{owner}/{repo}/git/commits", s.repoScoped(s.createCommit))
	rest.HandleFunc("POST /repos/{owner}/{repo}/git/blobs", s.repoScoped(s.createBlob))
	rest.HandleFunc("GET /repos/{owner}/{repo}/git/blobs/{sha}", s.repoScoped(s.getBlob))
	rest.HandleFunc("GET /repos/{owner}/{repo}/git/ref/{ref...}", s.repoScoped(s.getRef))
	rest.HandleFunc("PATCH /repos/{owner}/{repo}/git/refs/{ref...}", s.repoScoped(s.updateRef))
	rest.HandleFunc("POST /app/installations/{id}/access_tokens", s.accessToken)
	rest.HandleFunc("POST /graphql", s.graphql)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/api/v3/"); ok {
			r.URL.Path = "/" + p
		} else if r.URL.Path == "/api/graphql" {
			r.URL.Path = "/graphql"
		}
		r.URL.RawPath = ""
		r.Body = http.MaxBytesReader(w, r.Body, 50<<20)

		key := s.endpoint(rest, r)
		s.mu.Lock()
		s.reqSeq++
		reqID := fmt.Sprintf("FAKE:%04X:%06X", s.reqSeq, s.reqSeq*7919)
		s.calls[key]++
		s.total++
		latency := s.latency
		s.mu.Unlock()
		w.Header().Set("X-GitHub-Request-Id", reqID)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")

		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if key == EndpointAccessToken { // JWT-authenticated, not rate limited here
			rest.ServeHTTP(w, r)
			return
		}
		if f := s.takeFault(key); f != nil {
			s.writeFault(w, key, *f)
			return
		}
		if !s.authorized(r) {
			s.writeRateHeaders(w, key, false)
			writeJSON(w, http.StatusUnauthorized, restError{Message: "Bad credentials", DocumentationURL: "https://docs.github.com/rest"})
			return
		}
		if limited := s.writeRateHeaders(w, key, true); limited {
			s.mu.Lock()
			s.second.refused++
			s.mu.Unlock()
			if strings.HasPrefix(key, "graphql") {
				writeJSON(w, http.StatusOK, gqlResponse{Errors: []gqlError{{Type: "RATE_LIMITED", Message: "API rate limit exceeded for user ID 1."}}})
				return
			}
			writeJSON(w, http.StatusForbidden, restError{Message: "API rate limit exceeded for user ID 1.", DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
			return
		}
		if contentGenerating(key, r.Method) {
			s.mu.Lock()
			wait, ok := s.admitContent(time.Now())
			s.mu.Unlock()
			if !ok {
				s.writeSecondaryLimit(w, key, wait)
				return
			}
		}
		rest.ServeHTTP(w, r)
	})
}

// endpoints names the REST routes for the counters.
var endpoints = map[string]string{
	"POST /repos/{owner}/{repo}/git/trees":          EndpointCreateTree,
	"POST /repos/{owner}/{repo}/git/commits":        EndpointCreateCommit,
	"POST /repos/{owner}/{repo}/git/blobs":          EndpointCreateBlob,
	"GET /repos/{owner}/{repo}/git/blobs/{sha}":     EndpointGetBlob,
	"GET /repos/{owner}/{repo}/git/ref/{ref...}":    EndpointGetRef,
	"PATCH /repos/{owner}/{repo}/git/refs/{ref...}": EndpointUpdateRef,
	"POST /app/installations/{id}/access_tokens":    EndpointAccessToken,
}

// endpoint names the request for the counters.
func (s *Server) endpoint(mux *http.ServeMux, r *http.Request) string {
	_, pattern := mux.Handler(r)
	if pattern == "POST /graphql" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req gqlRequest
		_ = json.Unmarshal(body, &req)
		if doc, err := parser.ParseQuery(&ast.Source{Input: req.Query}); err == nil {
			if op := doc.Operations.ForName(req.OperationName); op != nil && op.Operation == ast.Mutation {
				return EndpointGraphQLMutation
			}
		}
		return EndpointGraphQLQuery
	}
	if e, ok := endpoints[pattern]; ok {
		return e
	}
	return EndpointUnknown
}

func (s *Server) takeFault(key string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.f.Endpoint != "" && f.f.Endpoint != key {
			continue
		}
		f.n--
		if f.n <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		out := f.f
		return &out
	}
	return nil
}

func (s *Server) writeFault(w http.ResponseWriter, key string, f Fault) {
	h := w.Header()
	s.mu.Lock()
	r := s.rate
	if f.RetryAfter > 0 || f.RateLimitReset > 0 || f.Status == http.StatusTooManyRequests {
		s.second.refused++
	}
	s.mu.Unlock()
	h.Set("X-RateLimit-Limit", strconv.Itoa(r.limit))
	h.Set("X-RateLimit-Resource", resource(key))
	msg := f.Message
	doc := "https://docs.github.com/rest"
	switch {
	case f.RateLimitReset > 0:
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Used", strconv.Itoa(r.limit))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(f.RateLimitReset).Unix(), 10))
		if msg == "" {
			msg = "API rate limit exceeded for user ID 1."
		}
	default:
		h.Set("X-RateLimit-Remaining", strconv.Itoa(r.remaining))
		h.Set("X-RateLimit-Used", strconv.Itoa(r.limit-r.remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(r.reset.Unix(), 10))
	}
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		if msg == "" {
			msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
			doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
		}
	}
	if msg == "" {
		msg = http.StatusText(f.Status)
		if f.Status >= 500 {
			msg = "Server Error"
		}
	}
	writeJSON(w, f.Status, restError{Message: msg, DocumentationURL: doc})
}

// writeRateHeaders spends one unit of the rate limit and sets the
// X-RateLimit-* headers; it reports whether the limit is exhausted.
func (s *Server) writeRateHeaders(w http.ResponseWriter, key string, spend bool) bool {
	s.mu.Lock()
	now := time.Now()
	if !now.Before(s.rate.reset) {
		s.rate.remaining = s.rate.limit
		s.rate.exhausted = false
		s.rate.reset = now.Add(time.Hour)
	}
	limited := s.rate.exhausted || s.rate.remaining <= 0
	if spend && !limited {
		s.rate.remaining--
	}
	r := s.rate
	s.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(r.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(r.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(r.reset.Unix(), 10))
	h.Set("X-RateLimit-Used", strconv.Itoa(r.limit-r.remaining))
	h.Set("X-RateLimit-Resource", resource(key))
	return spend && limited
}

func resource(key string) string {
	if strings.HasPrefix(key, "graphql") {
		return "graphql"
	}
	return "core"
}

// authorized checks the Authorization header: the PAT, or an unexpired
// installation token, as "Bearer X" or "token X".
func (s *Server) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok || cred == "" || (!strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token")) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cred == s.token {
		return true
	}
	it, ok := s.issued[cred]
	return ok && time.Now().Before(it.expires)
}

// repoScoped answers 404 for any repository but the served one.
func (s *Server) repoScoped(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.PathValue("owner"), s.owner) || !strings.EqualFold(r.PathValue("repo"), s.repo) {
			writeJSON(w, http.StatusNotFound, restError{Message: "Not Found", DocumentationURL: "https://docs.github.com/rest"})
			return
		}
		h(w, r)
	}
}

// runRefUpdateHooks plays the registered foreign writers before a ref update.
func (s *Server) runRefUpdateHooks() {
	s.mu.Lock()
	hooks := append([]func(){}, s.hooks...)
	foreign := s.foreign > 0
	if foreign {
		s.foreign--
	}
	s.mu.Unlock()
	if foreign {
		s.mu.Lock()
		s.humanSeq++
		n := s.humanSeq
		s.mu.Unlock()
		s.Commit(fmt.Sprintf("docs: a person's edit %d", n), map[string][]byte{
			fmt.Sprintf("HUMAN-%d.md", n): []byte(fmt.Sprintf("edit %d\n", n)),
		})
	}
	for _, h := range hooks {
		h()
	}
}

type restError struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url,omitempty"`
	Status           string `json:"status,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
