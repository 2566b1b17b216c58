package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"google.golang.org/api/idtoken"

	"github.com/pinroll/pinroll/internal/server"
)

// serverURL normalises a --server value: a missing scheme means http
// ("localhost:8080"), and a trailing slash is dropped.
func serverURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usageError{fmt.Sprintf("--server %q: want a URL such as http://localhost:8080 or https://pinroll-ops-xyz.a.run.app", s)}
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// isLoopback reports whether the server runs on this machine, where local
// mode needs no credentials.
func isLoopback(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// authorize sets the Authorization header of a request to server:
// $PINROLL_OPS_TOKEN, else (for a remote server) a Google ID token minted
// from the caller's Google credentials with the server URL as audience.
func authorize(ctx context.Context, env *cliEnv, req *http.Request, server string) error {
	if req.Header.Get("Authorization") != "" {
		return nil
	}
	if tok := env.getenv("PINROLL_OPS_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
	if isLoopback(server) {
		return nil // local mode: the routes are open
	}
	ts, err := idtoken.NewTokenSource(ctx, server)
	if err != nil {
		return fmt.Errorf("no PINROLL_OPS_TOKEN set and no Google credentials to mint an ID token for %s (%v): set PINROLL_OPS_TOKEN, or GOOGLE_APPLICATION_CREDENTIALS to a service account allowed to invoke it", server, err)
	}
	tok, err := ts.Token()
	if err != nil {
		return fmt.Errorf("mint a Google ID token for %s: %w", server, err)
	}
	tok.SetAuthHeader(req)
	return nil
}

// call sends a request to the server and returns its answer's body. A
// refused request fails with the server's own error text; a server that does
// not answer fails saying how to start one.
func call(ctx context.Context, env *cliEnv, server, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, server+path, body)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", server, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := authorize(ctx, env, req, server); err != nil {
		return nil, err
	}
	return do(env, req)
}

// do performs req and returns the body of a 2xx answer (see call).
func do(env *cliEnv, req *http.Request) ([]byte, error) {
	timeout := 2 * time.Minute
	if req.URL.Path == "/squash" {
		timeout = server.SquashTimeout + time.Minute // the server answers within its own deadline
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("no pinroll server is running at %s%s: start one with `pinroll serve` (or point --server or $PINROLL_SERVER at yours)",
				req.URL.Scheme+"://", req.URL.Host)
		}
		return nil, fmt.Errorf("send to %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", req.URL.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusUnauthorized {
				return nil, fmt.Errorf("%s (%s): set PINROLL_OPS_TOKEN to the server's ops token, or use Google credentials of an allowed invoker", e.Error, resp.Status)
			}
			return nil, fmt.Errorf("%s (%s)", e.Error, resp.Status)
		}
		return nil, fmt.Errorf("%s answered %s: %s", req.URL.Redacted(), resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// serverFlag adds --server to a client command.
func serverFlag(env *cliEnv, fs interface {
	String(name, value, usage string) *string
}) *string {
	return fs.String("server", serverDefault(env), "pinroll server URL (default $PINROLL_SERVER, else http://localhost:8080)")
}
