package github

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/repotest"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
	"github.com/pinroll/pinroll/internal/testing/testlog"
)

const kust = "k8s/overlays/dev/kustomization.yaml"

var bot = gitops.Signature{Name: "pinroll", Email: "pinroll@example.com", When: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}

func seedFiles() map[string][]byte {
	return map[string][]byte{
		kust:        []byte("images:\n- name: server\n  digest: sha256:1111\n"),
		"README.md": []byte("# gitops\n"),
	}
}

// newFake returns a fake GitHub without its secondary write limits: the
// clients of these tests are unpaced (tests of the limits set them).
func newFake(t *testing.T, files map[string][]byte) *fakegithub.Server {
	t.Helper()
	f := fakegithub.New(t, "acme", "gitops", "main", files)
	f.SetContentLimits()
	return f
}

// newRepo returns a backend for f with fast retries; opts may adjust its
// options before New.
func newRepo(t *testing.T, f *fakegithub.Server, opts ...func(*Options)) *Repo {
	t.Helper()
	o := Options{Repo: f.RepoURL(), APIURL: f.URL(), Token: f.Token(), WritesPerMinute: -1}
	for _, fn := range opts {
		fn(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.lim.backoff = time.Millisecond
	return r
}

func TestContract(t *testing.T) {
	t.Parallel()
	repotest.Run(t, func(t *testing.T, files map[string][]byte) gitops.Repo {
		return newRepo(t, newFake(t, files))
	})
}

// pin plays the engine's rolling pin: read, edit, write, move; it retries on
// ErrConflict up to attempts times and returns the new tip.
func pin(t *testing.T, r gitops.Repo, digest string, attempts int) (string, []error) {
	t.Helper()
	ctx := t.Context()
	var errs []error
	for range attempts {
		s, err := r.Read(ctx, "main", kust)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		want := []byte("images:\n- name: server\n  digest: " + digest + "\n")
		if bytes.Equal(s.Files[kust], want) {
			return s.Commit.SHA, errs
		}
		c, err := r.WriteCommit(ctx, gitops.NewCommit{
			BaseTree: s.Commit.Tree, Files: map[string][]byte{kust: want}, Parents: []string{s.Commit.SHA},
			Message: "chore(dev): pin server " + digest + "\n\nPinroll-Kind: rolling\n", Author: bot, Committer: bot,
		})
		if err != nil {
			t.Fatalf("WriteCommit: %v", err)
		}
		err = r.MoveBranch(ctx, "main", s.Commit.SHA, c)
		if err == nil {
			return c, errs
		}
		if !errors.Is(err, gitops.ErrConflict) {
			t.Fatalf("MoveBranch: %v", err)
		}
		errs = append(errs, err)
	}
	t.Fatalf("no pin after %d attempts: %v", attempts, errs)
	return "", errs
}

func TestCallBudget(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)

	// A pin that changes something: read, tree, commit, move.
	tip, _ := pin(t, r, "sha256:2222", 1)
	want := map[string]int{
		fakegithub.EndpointGraphQLQuery:    1,
		fakegithub.EndpointCreateTree:      1,
		fakegithub.EndpointCreateCommit:    1,
		fakegithub.EndpointGraphQLMutation: 1,
	}
	if got := f.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls for a pin = %v, want %v", got, want)
	}
	if got := r.Calls(); got != 4 || f.TotalCalls() != 4 {
		t.Errorf("Calls() = %d, fake saw %d, want 4", got, f.TotalCalls())
	}
	if f.Head("main") != tip {
		t.Errorf("main at %s, want %s", f.Head("main"), tip)
	}

	// A pin that changes nothing: the read alone.
	f.ResetCalls()
	before := r.Calls()
	pin(t, r, "sha256:2222", 1)
	if got := f.TotalCalls(); got != 1 || r.Calls()-before != 1 {
		t.Errorf("a pin with nothing to change made %d calls (backend counted %d), want 1: %v", got, r.Calls()-before, f.Calls())
	}

	// A second changing pin, on a fresh backend (no cached repository id):
	// still 4.
	f.ResetCalls()
	pin(t, newRepo(t, f), "sha256:3333", 1)
	if got := f.TotalCalls(); got != 4 {
		t.Errorf("a pin from a fresh backend made %d calls, want 4: %v", got, f.Calls())
	}
	if got := string(f.File("main", kust)); !strings.Contains(got, "sha256:3333") {
		t.Errorf("%s = %q, want the new digest", kust, got)
	}
}

func TestForeignWriterLosesNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)
	f.ForeignCommitsBeforeUpdate(3)

	tip, conflicts := pin(t, r, "sha256:4444", 5)
	if len(conflicts) != 3 {
		t.Fatalf("%d conflicts, want 3 (one per foreign commit): %v", len(conflicts), conflicts)
	}
	for _, err := range conflicts {
		if !strings.Contains(err.Error(), "X-GitHub-Request-Id FAKE:") {
			t.Errorf("conflict error lacks the request id: %v", err)
		}
	}
	log := f.Log("main")
	if len(log) != 5 || log[0].SHA != tip {
		t.Fatalf("log has %d commits with tip %s, want 5 with our pin %s on top", len(log), log[0].SHA, tip)
	}
	for i, c := range log[1:4] {
		if c.Author.Email != fakegithub.Human.Email {
			t.Errorf("commit %d below the pin is by %s, want the person's", i+1, c.Author.Email)
		}
	}
	for i := 1; i <= 3; i++ {
		if f.File("main", fmt.Sprintf("HUMAN-%d.md", i)) == nil {
			t.Errorf("the person's HUMAN-%d.md is gone", i)
		}
	}
	if got := string(f.File("main", kust)); !strings.Contains(got, "sha256:4444") {
		t.Errorf("%s = %q, want the pin", kust, got)
	}
}

func TestConflictWithUnknownErrorWording(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	f.SetStaleErrorType("UNPROCESSABLE")
	r := newRepo(t, f)
	s, err := r.Read(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x", Author: bot, Committer: bot})
	if err != nil {
		t.Fatal(err)
	}
	human := f.Commit("a person's push", map[string][]byte{"y": []byte("y")})
	err = r.MoveBranch(t.Context(), "main", s.Commit.SHA, c)
	if !errors.Is(err, gitops.ErrConflict) {
		t.Fatalf("MoveBranch after a foreign push = %v, want ErrConflict", err)
	}
	if f.Head("main") != human {
		t.Errorf("main moved to %s, want it left at the person's %s", f.Head("main"), human)
	}
}

func TestMoveBranchIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)
	s, err := r.Read(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x", Author: bot, Committer: bot})
	if err != nil {
		t.Fatal(err)
	}
	// The same move twice, as when an answer is lost and the call retried:
	// the second finds the branch already there.
	for i := range 2 {
		if err := r.MoveBranch(t.Context(), "main", s.Commit.SHA, c); err != nil {
			t.Fatalf("MoveBranch #%d: %v", i+1, err)
		}
	}
}

func TestCreateBranch(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)
	s, err := r.Read(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MoveBranch(t.Context(), "release/next", "", s.Commit.SHA); err != nil {
		t.Fatalf("create branch: %v", err)
	}
	if f.Head("release/next") != s.Commit.SHA {
		t.Errorf("release/next at %q, want %s", f.Head("release/next"), s.Commit.SHA)
	}
	if err := r.MoveBranch(t.Context(), "release/next", "", s.Commit.SHA); err != nil {
		t.Errorf("creating it again with the same target should be a no-op: %v", err)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)

	f.FailNext(2, http.StatusBadGateway)
	s, err := r.Read(t.Context(), "main", kust)
	if err != nil {
		t.Fatalf("Read after two 502s: %v", err)
	}
	if s.Files[kust] == nil || r.Calls() != 3 || f.TotalCalls() != 3 {
		t.Errorf("read %q in %d calls (fake saw %d), want the file in 3", s.Files[kust], r.Calls(), f.TotalCalls())
	}

	f.FailNext(2, http.StatusInternalServerError)
	if _, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x", Author: bot}); err != nil {
		t.Fatalf("WriteCommit after two 500s: %v", err)
	}

	f.ResetCalls()
	f.FailNext(100, http.StatusServiceUnavailable)
	_, err = r.Read(t.Context(), "main", kust)
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("Read through persistent 503s = %v, want ErrTransient", err)
	}
	if got := f.TotalCalls(); got != 1+defaultRetries {
		t.Errorf("%d calls, want %d (1 + %d retries)", got, 1+defaultRetries, defaultRetries)
	}
	for _, want := range []string{"acme/gitops@main", "503", "X-GitHub-Request-Id FAKE:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		inject   func(f *fakegithub.Server)
		call     string // read or write
		deadline time.Duration
		maxWait  time.Duration
		wantWait time.Duration // minimum elapsed on success
		wantErr  bool
		retry    time.Duration // RetryAfter(err) at least this
	}{
		{
			name:   "secondary 403 Retry-After honoured",
			inject: func(f *fakegithub.Server) { f.RetryAfterNext(http.StatusForbidden, time.Second) },
			call:   "read", deadline: 10 * time.Second, wantWait: time.Second,
		},
		{
			name: "429 Retry-After honoured on REST",
			inject: func(f *fakegithub.Server) {
				f.Inject(1, fakegithub.Fault{Endpoint: fakegithub.EndpointCreateTree, Status: 429, RetryAfter: time.Second})
			},
			call: "write", deadline: 10 * time.Second, wantWait: time.Second,
		},
		{
			name:   "Retry-After beyond the deadline",
			inject: func(f *fakegithub.Server) { f.RetryAfterNext(http.StatusTooManyRequests, 2*time.Minute) },
			call:   "read", deadline: 5 * time.Second, wantErr: true, retry: 2 * time.Minute,
		},
		{
			name:   "Retry-After beyond the cap without a deadline",
			inject: func(f *fakegithub.Server) { f.RetryAfterNext(http.StatusForbidden, 5*time.Second) },
			call:   "read", maxWait: time.Second, wantErr: true, retry: 5 * time.Second,
		},
		{
			name:   "primary limit on GraphQL waits for the reset",
			inject: func(f *fakegithub.Server) { f.ExhaustRateLimit(time.Second) },
			call:   "read", deadline: 10 * time.Second, wantWait: time.Second,
		},
		{
			name: "primary limit on REST waits for the reset",
			inject: func(f *fakegithub.Server) {
				f.Inject(1, fakegithub.Fault{Endpoint: fakegithub.EndpointCreateTree, Status: 403, RateLimitReset: time.Second})
			},
			call: "write", deadline: 10 * time.Second, wantWait: time.Second,
		},
		{
			name:   "primary limit on GraphQL resetting too late",
			inject: func(f *fakegithub.Server) { f.ExhaustRateLimit(time.Hour) },
			call:   "read", deadline: 5 * time.Second, wantErr: true, retry: 59 * time.Minute,
		},
		{
			name: "primary limit on REST resetting too late",
			inject: func(f *fakegithub.Server) {
				f.Inject(1, fakegithub.Fault{Endpoint: fakegithub.EndpointCreateTree, Status: 403, RateLimitReset: time.Hour})
			},
			call: "write", deadline: 5 * time.Second, wantErr: true, retry: 59 * time.Minute,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, seedFiles())
			r := newRepo(t, f, func(o *Options) { o.MaxWait = tc.maxWait })
			s, err := r.Read(t.Context(), "main")
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			tc.inject(f)
			start := time.Now()
			if tc.call == "read" {
				_, err = r.Read(ctx, "main", kust)
			} else {
				_, err = r.WriteCommit(ctx, gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x", Author: bot})
			}
			elapsed := time.Since(start)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("%s: %v", tc.call, err)
				}
				if elapsed < tc.wantWait-50*time.Millisecond {
					t.Errorf("succeeded after %s, want a wait of at least %s", elapsed, tc.wantWait)
				}
				return
			}
			if !errors.Is(err, ErrRateLimited) {
				t.Fatalf("%s = %v, want ErrRateLimited", tc.call, err)
			}
			if elapsed > time.Second {
				t.Errorf("failed after %s, want at once", elapsed)
			}
			if got := RetryAfter(err); got < tc.retry {
				t.Errorf("RetryAfter = %s, want at least %s", got, tc.retry)
			}
			if !strings.Contains(err.Error(), "X-GitHub-Request-Id FAKE:") {
				t.Errorf("error lacks the request id: %v", err)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f, func(o *Options) { o.Token = "not-the-token" })
	s := gitops.Snapshot{Commit: gitops.Commit{SHA: strings.Repeat("a", 40), Tree: strings.Repeat("b", 40)}}
	for name, call := range map[string]func() error{
		"read": func() error { _, err := r.Read(t.Context(), "main", kust); return err },
		"write": func() error {
			_, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x"})
			return err
		},
		"move": func() error { return r.MoveBranch(t.Context(), "main", s.Commit.SHA, s.Commit.Tree) },
	} {
		f.ResetCalls()
		err := call()
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s with a bad token = %v, want ErrUnauthorized", name, err)
			continue
		}
		for _, want := range []string{"authentication failed", "Bad credentials", "HTTP 401", "X-GitHub-Request-Id FAKE:"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", name, err, want)
			}
		}
		if f.TotalCalls() != 1 {
			t.Errorf("%s: %d calls, want 1 (a 401 is not retried)", name, f.TotalCalls())
		}
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	secret := "ghp_" + randomHex(t, 18)
	var logs testlog.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := newRepo(t, f, func(o *Options) { o.Token = secret; o.Logger = logger })

	sha := strings.Repeat("c", 40)
	var errs []error
	// Answers GitHub gives a rejected token, and retried failures that log.
	f.FailNext(1, http.StatusBadGateway)
	_, err := r.Read(t.Context(), "main", kust)
	errs = append(errs, err)
	_, err = r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: sha, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{sha}, Message: "x"})
	errs = append(errs, err)
	errs = append(errs, r.MoveBranch(t.Context(), "main", sha, sha))
	f.RetryAfterNext(http.StatusForbidden, time.Hour)
	_, err = r.Read(t.Context(), "main")
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d succeeded with a rejected token", i)
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, secret) {
				t.Errorf("error %d shows the token: %s", i, s)
			}
		}
	}
	if !strings.Contains(logs.String(), "github call") {
		t.Fatalf("no debug log lines captured; the test would prove nothing: %q", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("a log line shows the token:\n%s", logs.String())
	}
}

// echoTransport fails every request with an error quoting its Authorization
// header, as a careless proxy might.
type echoTransport struct{}

func (echoTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("proxy refused request with %s", req.Header.Get("Authorization"))
}

func TestSecretsScrubbedFromForeignErrors(t *testing.T) {
	t.Parallel()
	secret := "ghp_" + randomHex(t, 18)
	var logs testlog.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := New(Options{Repo: "https://github.com/acme/gitops", Token: secret, Logger: logger, HTTPClient: &http.Client{Transport: echoTransport{}}})
	if err != nil {
		t.Fatal(err)
	}
	r.lim.backoff = time.Millisecond
	_, err = r.Read(t.Context(), "main")
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("error = %v, want the token redacted", err)
	}
	if !errors.Is(err, ErrTransient) {
		t.Errorf("redacted error lost its kind: %v", err)
	}
	if e := errors.Unwrap(err); e != nil && strings.Contains(e.Error(), secret) {
		t.Errorf("unwrapping the error reveals the token: %v", e)
	}
	if !strings.Contains(logs.String(), "retrying") || strings.Contains(logs.String(), secret) {
		t.Errorf("want the retries logged without the token:\n%s", logs.String())
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func testKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	_, key := testKey(t)
	const token = "ghp_thisIsNotARealTokenButTreatItAsOne"
	for _, tc := range []struct {
		name    string
		o       Options
		want    []string // substrings of the error; nil: no error
		missing []string // must not appear
	}{
		{name: "token", o: Options{Repo: "https://github.com/acme/gitops", Token: token}},
		{name: "token with trailing newline", o: Options{Repo: "https://github.com/acme/gitops", Token: token + "\n"}},
		{name: "app", o: Options{Repo: "https://github.com/acme/gitops", AppID: 1, InstallationID: 2, PrivateKey: key}},
		{name: "short repo", o: Options{Repo: "acme/gitops", Token: token}},
		{name: "no credentials", o: Options{Repo: "https://github.com/acme/gitops"},
			want: []string{"PINROLL_GITHUB_TOKEN", "PINROLL_GITHUB_APP_ID"}},
		{name: "both", o: Options{Repo: "https://github.com/acme/gitops", Token: token, AppID: 1},
			want: []string{"only one"}, missing: []string{token}},
		{name: "app id only", o: Options{Repo: "https://github.com/acme/gitops", AppID: 1},
			want: []string{"PINROLL_GITHUB_APP_INSTALLATION_ID", "PINROLL_GITHUB_APP_PRIVATE_KEY"}, missing: []string{"PINROLL_GITHUB_APP_ID,"}},
		{name: "key only", o: Options{Repo: "https://github.com/acme/gitops", PrivateKey: key},
			want: []string{"PINROLL_GITHUB_APP_ID", "PINROLL_GITHUB_APP_INSTALLATION_ID"}, missing: []string{"BEGIN", "PINROLL_GITHUB_APP_PRIVATE_KEY"}},
		{name: "installation without key", o: Options{Repo: "https://github.com/acme/gitops", AppID: 1, InstallationID: 2},
			want: []string{"missing PINROLL_GITHUB_APP_PRIVATE_KEY"}},
		{name: "bad key", o: Options{Repo: "https://github.com/acme/gitops", AppID: 1, InstallationID: 2, PrivateKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbC1oZXJl\n-----END RSA PRIVATE KEY-----\n")},
			want: []string{"PINROLL_GITHUB_APP_PRIVATE_KEY"}, missing: []string{"c2VjcmV0LWtleS1tYXRlcmlhbC1oZXJl"}},
		{name: "not PEM", o: Options{Repo: "https://github.com/acme/gitops", AppID: 1, InstallationID: 2, PrivateKey: []byte("hunter2hunter2hunter2")},
			want: []string{"not PEM"}, missing: []string{"hunter2"}},
		{name: "bad repo", o: Options{Repo: "https://github.com/acme", Token: token},
			want: []string{"OWNER/REPO"}, missing: []string{token}},
		{name: "repo with credentials", o: Options{Repo: "https://user:pw@github.com/acme/gitops", Token: token},
			want: []string{"credentials in the URL"}},
		{name: "bad api url", o: Options{Repo: "https://github.com/acme/gitops", APIURL: "ftp://x", Token: token},
			want: []string{"API URL"}},
		{name: "token with space", o: Options{Repo: "https://github.com/acme/gitops", Token: "abc def"},
			want: []string{"whitespace"}, missing: []string{"abc def"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.o)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, m := range tc.missing {
				if strings.Contains(err.Error(), m) {
					t.Errorf("error %q shows %q", err, m)
				}
			}
		})
	}
}

func TestAppAuth(t *testing.T) {
	t.Parallel()
	key, keyPEM := testKey(t)
	f := newFake(t, seedFiles())
	f.RegisterApp(4242, 77, &key.PublicKey)
	r := newRepo(t, f, func(o *Options) { o.Token = ""; o.AppID = 4242; o.InstallationID = 77; o.PrivateKey = keyPEM })

	pin(t, r, "sha256:5555", 1)
	pin(t, r, "sha256:6666", 1)
	calls := f.Calls()
	if calls[fakegithub.EndpointAccessToken] != 1 {
		t.Errorf("%d token exchanges, want 1 (the installation token is reused)", calls[fakegithub.EndpointAccessToken])
	}
	if got := r.Calls(); got != 8 {
		t.Errorf("two pins made %d API calls, want 8", got)
	}
	if got := string(f.File("main", kust)); !strings.Contains(got, "sha256:6666") {
		t.Errorf("%s = %q, want the second pin", kust, got)
	}

	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		_, otherPEM := testKey(t)
		r := newRepo(t, f, func(o *Options) { o.Token = ""; o.AppID = 4242; o.InstallationID = 77; o.PrivateKey = otherPEM })
		_, err := r.Read(t.Context(), "main")
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Read with the wrong key = %v, want ErrUnauthorized", err)
		}
		for _, want := range []string{"installation 77", "PINROLL_GITHUB_APP_ID", "HTTP 401"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("error shows the key: %v", err)
		}
	})
	t.Run("unknown installation", func(t *testing.T) {
		t.Parallel()
		r := newRepo(t, f, func(o *Options) { o.Token = ""; o.AppID = 4242; o.InstallationID = 78; o.PrivateKey = keyPEM })
		if _, err := r.Read(t.Context(), "main"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Read with an unknown installation = %v, want ErrUnauthorized", err)
		}
	})
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		api, host, rest, graphql string
	}{
		{"", "github.com", "https://api.github.com/", "https://api.github.com/graphql"},
		{"", "ghe.example.com", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"},
		{"https://ghe.example.com/api/v3", "ghe.example.com", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"},
		{"https://ghe.example.com/api/v3/", "github.com", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"},
		{"https://ghe.example.com/prefix/api/v3", "", "https://ghe.example.com/prefix/api/v3/", "https://ghe.example.com/prefix/api/graphql"},
		{"https://api.github.com", "github.com", "https://api.github.com/", "https://api.github.com/graphql"},
		{"http://127.0.0.1:8080", "github.com", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/graphql"},
	} {
		rest, gql, err := endpoints(tc.api, tc.host)
		if err != nil {
			t.Errorf("endpoints(%q, %q): %v", tc.api, tc.host, err)
			continue
		}
		if rest.String() != tc.rest || gql != tc.graphql {
			t.Errorf("endpoints(%q, %q) = %s, %s; want %s, %s", tc.api, tc.host, rest, gql, tc.rest, tc.graphql)
		}
	}
}

// pathRecorder records the paths requested through it.
type pathRecorder struct {
	mu    sync.Mutex
	paths []string
}

func (p *pathRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.paths = append(p.paths, req.Method+" "+req.URL.Path)
	p.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func TestEnterpriseURLs(t *testing.T) {
	t.Parallel()
	key, keyPEM := testKey(t)
	f := newFake(t, seedFiles())
	f.RegisterApp(1, 2, &key.PublicKey)
	rec := &pathRecorder{}
	r := newRepo(t, f, func(o *Options) {
		o.Repo = "https://ghe.example.com/acme/gitops"
		o.APIURL = f.URL() + "/api/v3"
		o.Token, o.AppID, o.InstallationID, o.PrivateKey = "", 1, 2, keyPEM
		o.HTTPClient = &http.Client{Transport: rec}
	})
	pin(t, r, "sha256:7777", 1)
	want := []string{
		"POST /api/v3/app/installations/2/access_tokens",
		"POST /api/graphql",
		"POST /api/v3/repos/acme/gitops/git/trees",
		"POST /api/v3/repos/acme/gitops/git/commits",
		"POST /api/graphql",
	}
	if got := strings.Join(rec.paths, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f, func(o *Options) { o.Repo = "https://github.com/acme/nope" })
	_, err := r.Read(t.Context(), "main", kust)
	if err == nil || !strings.Contains(err.Error(), "acme/nope") || !strings.Contains(err.Error(), "repository not found") {
		t.Errorf("Read of a missing repository = %v, want a clear error naming it", err)
	}
	if errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("a missing repository is not a missing branch: %v", err)
	}

	r = newRepo(t, f)
	if _, err := r.Read(t.Context(), "main", "k8s"); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("Read of a directory = %v, want an error saying so", err)
	}
	if _, err := r.Read(t.Context(), "main", "../etc/passwd"); err == nil {
		t.Error("Read of ../etc/passwd succeeded")
	}
}

func TestWriteRejected(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)
	s, err := r.Read(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	unknown := strings.Repeat("d", 40)
	_, err = r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: unknown, Files: map[string][]byte{kust: []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x"})
	if err == nil {
		t.Fatal("WriteCommit on an unknown base tree succeeded")
	}
	for _, want := range []string{"acme/gitops", "dddddddddddd", kust, "HTTP 422", "X-GitHub-Request-Id FAKE:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if f.TotalCalls() != 1 {
		t.Errorf("%d calls, want 1 (a 422 is not retried)", f.TotalCalls())
	}
	_, err = r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"y": []byte("y")}, Parents: []string{unknown}, Message: "x"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 422") || !strings.Contains(err.Error(), "dddddddddddd") {
		t.Errorf("WriteCommit with an unknown parent = %v, want a 422 naming it", err)
	}
}

func TestBinaryFiles(t *testing.T) {
	t.Parallel()
	bin := []byte("\x89PNG\r\n\x1a\n\x00\x00\xff")
	f := newFake(t, map[string][]byte{"logo.png": bin, kust: []byte("images: []\n")})
	r := newRepo(t, f)
	s, err := r.Read(t.Context(), "main", "logo.png", kust)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Files["logo.png"], bin) {
		t.Errorf("logo.png = %q, want %q", s.Files["logo.png"], bin)
	}
	if got := f.Calls(); got[fakegithub.EndpointGetBlob] != 1 || f.TotalCalls() != 2 {
		t.Errorf("calls = %v, want the query and one blob", got)
	}

	latin1 := []byte("caf\xe9\n")
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"menu.txt": latin1}, Parents: []string{s.Commit.SHA}, Message: "x", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.File(c, "menu.txt"); !bytes.Equal(got, latin1) {
		t.Errorf("menu.txt = %q, want %q", got, latin1)
	}
}

func TestRepoURLForms(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://github.com/acme/gitops":      "acme/gitops@github.com",
		"https://github.com/acme/gitops.git":  "acme/gitops@github.com",
		"https://github.com/acme/gitops/":     "acme/gitops@github.com",
		"acme/gitops":                         "acme/gitops@github.com",
		"https://ghe.example.com/acme/gitops": "acme/gitops@ghe.example.com",
	} {
		o, n, h, err := parseRepo(in)
		if err != nil || o+"/"+n+"@"+h != want {
			t.Errorf("parseRepo(%q) = %s/%s@%s, %v; want %s", in, o, n, h, err, want)
		}
	}
}

func TestDeadlineIsNotRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)
	f.SetLatency(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Read(ctx, "main", kust)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTransient) {
		t.Fatalf("Read past its deadline = %v, want DeadlineExceeded (not ErrTransient)", err)
	}
	if r.Calls() != 1 {
		t.Errorf("%d calls, want 1: a caller's deadline is not retried", r.Calls())
	}
}

func TestForbiddenIsNotARateLimit(t *testing.T) {
	t.Parallel()
	f := newFake(t, seedFiles())
	r := newRepo(t, f)
	f.Inject(1, fakegithub.Fault{Status: http.StatusForbidden, Message: "Resource not accessible by integration"})
	_, err := r.Read(t.Context(), "main")
	if err == nil || errors.Is(err, ErrRateLimited) || errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "Resource not accessible by integration") {
		t.Fatalf("Read on a 403 without rate-limit signs = %v, want a clear permanent error", err)
	}
	if r.Calls() != 1 {
		t.Errorf("%d calls, want 1", r.Calls())
	}
}

// BenchmarkRollingPin measures a pin that changes the overlay against the
// fake, reporting API calls per pin (the budget is 4).
func BenchmarkRollingPin(b *testing.B) {
	f := fakegithub.New(b, "acme", "gitops", "main", seedFiles())
	f.SetRateLimit(1 << 30) // b.N grows past GitHub's 5,000 calls an hour
	f.SetContentLimits()    // and past its 500 writes an hour
	r, err := New(Options{Repo: f.RepoURL(), APIURL: f.URL(), Token: f.Token(), WritesPerMinute: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ResetTimer()
	for i := range b.N {
		s, err := r.Read(ctx, "main", kust)
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.WriteCommit(ctx, gitops.NewCommit{
			BaseTree: s.Commit.Tree, Files: map[string][]byte{kust: fmt.Appendf(nil, "digest: %d\n", i)},
			Parents: s.Commit.Parents, Message: "rolling", Author: bot, Committer: bot,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.MoveBranch(ctx, "main", s.Commit.SHA, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.Calls())/float64(b.N), "calls/op")
}

// TestMoveBranchRefusalCalls: a lost race refused as STALE_DATA on a move
// sent once is ErrConflict without a check query; every other refusal is
// checked, so a repeated move that had landed still succeeds.
func TestMoveBranchRefusalCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		staleTyp string // "" keeps STALE_DATA
		foreign  bool   // a person pushes before the move
		repeat   bool   // the same move was made (and landed) before
		fail502  bool   // the first send is answered 502 and retried
		conflict bool
		calls    int // requests of the (last) move
	}{
		{name: "lost race, STALE_DATA", foreign: true, conflict: true, calls: 1},
		{name: "lost race, unknown wording", staleTyp: "UNPROCESSABLE", foreign: true, conflict: true, calls: 2},
		{name: "lost race after a retried send", foreign: true, fail502: true, conflict: true, calls: 3},
		{name: "the same move again", repeat: true, calls: 2},
		{name: "a move that wins", calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, seedFiles())
			if tc.staleTyp != "" {
				f.SetStaleErrorType(tc.staleTyp)
			}
			r := newRepo(t, f)
			s, err := r.Read(t.Context(), "main")
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{"x": []byte("x")}, Parents: []string{s.Commit.SHA}, Message: "x", Author: bot, Committer: bot})
			if err != nil {
				t.Fatal(err)
			}
			if tc.repeat {
				if err := r.MoveBranch(t.Context(), "main", s.Commit.SHA, c); err != nil {
					t.Fatal(err)
				}
			}
			want := c
			if tc.foreign {
				want = f.Commit("a person's push", map[string][]byte{"y": []byte("y")})
			}
			if tc.fail502 {
				f.FailNext(1, http.StatusBadGateway)
			}
			f.ResetCalls()
			err = r.MoveBranch(t.Context(), "main", s.Commit.SHA, c)
			if errors.Is(err, gitops.ErrConflict) != tc.conflict || (!tc.conflict && err != nil) {
				t.Fatalf("MoveBranch = %v, want conflict %v", err, tc.conflict)
			}
			if n := f.TotalCalls(); n != tc.calls {
				t.Errorf("%d requests, want %d", n, tc.calls)
			}
			if f.Head("main") != want {
				t.Errorf("main at %s, want %s", f.Head("main"), want)
			}
		})
	}
}

// TestContentLimitRecovers runs a pin's three content writes (CreateTree,
// CreateCommit, the updateRefs mutation) against the fake's real secondary
// limit shrunk to seconds: an unpaced client is refused (REST 403 or
// GraphQL 403, with Retry-After) and recovers by waiting; a client paced
// under the same limit is never refused.
func TestContentLimitRecovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		window  fakegithub.Window
		paced   bool
		refused int
	}{
		{"unpaced: the commit and the move refused", fakegithub.Window{Limit: 1, Per: 2 * time.Second}, false, 2},
		{"unpaced: the move refused", fakegithub.Window{Limit: 2, Per: 2 * time.Second}, false, 1},
		{"paced under the same limit", fakegithub.Window{Limit: 2, Per: 2 * time.Second}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, seedFiles())
			f.SetContentLimits(tc.window)
			r := newRepo(t, f, func(o *Options) {
				if tc.paced {
					o.WritesPerMinute = 0
					o.WriteLimits = []WriteLimit{{N: tc.window.Limit, Per: tc.window.Per}}
				}
			})
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			s, err := r.Read(ctx, "main")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: s.Commit.Tree, Files: map[string][]byte{kust: []byte("digest: 2\n")},
				Parents: []string{s.Commit.SHA}, Message: "pin", Author: bot, Committer: bot})
			if err != nil {
				t.Fatalf("WriteCommit: %v", err)
			}
			if err := r.MoveBranch(ctx, "main", s.Commit.SHA, c); err != nil {
				t.Fatalf("MoveBranch: %v", err)
			}
			if f.Head("main") != c || string(f.File("main", kust)) != "digest: 2\n" {
				t.Errorf("main at %s, want %s with the pin", f.Head("main"), c)
			}
			if got := f.RateLimited(); got != tc.refused {
				t.Errorf("%d requests refused, want %d", got, tc.refused)
			}
			if f.ContentWrites() != 3 {
				t.Errorf("%d content writes accepted, want 3", f.ContentWrites())
			}
			// Each refusal or paced write waits for the window to slide.
			if took := time.Since(start); (tc.refused > 0 || tc.paced) && took < time.Second {
				t.Errorf("took %v, want a wait for the window", took)
			}
		})
	}
}
