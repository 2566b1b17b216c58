package github

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trackedBody is a request body that counts its Close calls.
type trackedBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackedBody) Close() error {
	b.closed.Add(1)
	return nil
}

// TestRequestBodyClosed sends a request with a body through the limiter
// (issue 8.6): whatever happens, the caller's body is closed (an
// http.RoundTripper must close it, even on errors), every attempt sends the
// whole body (a retry gets a fresh copy from GetBody), and every copy is
// closed.
func TestRequestBodyClosed(t *testing.T) {
	t.Parallel()
	const payload = `{"query":"{ viewer { login } }"}`
	for _, tc := range []struct {
		name       string
		failures   int  // 502 answers before a 200
		rewindable bool // GetBody set
		refused    bool // nothing listens: every attempt fails to connect
		wantCalls  int
		wantErr    error
	}{
		{name: "retried then answered", failures: 2, rewindable: true, wantCalls: 3},
		{name: "retries spent", failures: 100, rewindable: true, wantCalls: 1 + defaultRetries, wantErr: ErrTransient},
		{name: "answered at once", rewindable: true, wantCalls: 1},
		{name: "connection refused", refused: true, rewindable: true, wantErr: ErrTransient},
		{name: "not rewindable is not retried", failures: 2, wantCalls: 1, wantErr: ErrTransient},
		{name: "not rewindable, connection refused", refused: true, wantErr: ErrTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if b, err := io.ReadAll(r.Body); err != nil || string(b) != payload {
					t.Errorf("attempt %d sent body %q (%v), want %q", n, b, err, payload)
				}
				if int(n) <= tc.failures {
					w.WriteHeader(http.StatusBadGateway)
					return
				}
				w.Write([]byte(`{"data":{}}`))
			}))
			t.Cleanup(srv.Close)
			url := srv.URL
			if tc.refused {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				url = "http://" + l.Addr().String()
				l.Close()
			}

			lim := newLimiter(srv.Client().Transport, slog.New(slog.DiscardHandler), 0)
			lim.backoff = time.Millisecond
			orig := &trackedBody{Reader: strings.NewReader(payload)}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Body, req.ContentLength = orig, int64(len(payload))
			var mu sync.Mutex
			var copies []*trackedBody
			if tc.rewindable {
				req.GetBody = func() (io.ReadCloser, error) {
					mu.Lock()
					defer mu.Unlock()
					c := &trackedBody{Reader: strings.NewReader(payload)}
					copies = append(copies, c)
					return c, nil
				}
			}

			resp, err := lim.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("RoundTrip = %v, want %v", err, tc.wantErr)
			}
			if tc.wantCalls > 0 && int(calls.Load()) != tc.wantCalls {
				t.Errorf("%d calls reached the server, want %d", calls.Load(), tc.wantCalls)
			}
			// The transport may close what it sent after RoundTrip returns.
			deadline := time.Now().Add(2 * time.Second)
			for {
				mu.Lock()
				open := 0
				for _, c := range copies {
					if c.closed.Load() == 0 {
						open++
					}
				}
				mu.Unlock()
				if orig.closed.Load() == 0 {
					open++
				}
				if open == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d request bodies left open (the caller's closed %d times; %d copies)", open, orig.closed.Load(), len(copies))
				}
				time.Sleep(5 * time.Millisecond)
			}
			if tc.rewindable && orig.closed.Load() != 1 {
				t.Errorf("the caller's body closed %d times, want once", orig.closed.Load())
			}
		})
	}
}
