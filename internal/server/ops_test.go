package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"google.golang.org/api/idtoken"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/server"
	"github.com/pinroll/pinroll/internal/testing/worlds"
)

// opsCall sends one request to h and decodes the JSON answer into out (when
// not nil); it returns the status and the raw body.
func opsCall(t *testing.T, h http.Handler, method, target, body string, out any, header ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if out != nil && rec.Code < 300 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: answer %q: %v", method, target, rec.Body.String(), err)
		}
	}
	return rec.Code, rec.Body.String()
}

// TestOpsRoutes is the incident over HTTP in every world: rollback with a
// hold, a push answered held, status telling it, resume catching up,
// history paged, the status page served.
func TestOpsRoutes(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *worlds.World) {
		srv := server.New(server.Options{Engine: w.Engine})
		for n := 1; n <= 3; n++ {
			w.Push(t, n, "latest", engine.Pinned)
		}
		var dep engine.OpsResult
		code, body := opsCall(t, srv, "POST", "/deploy", `{"env":"dev","image":"server","rollback":1,"hold":true,"reason":"INC-7"}`, &dep)
		if code != 200 || dep.Outcome != engine.Pinned || dep.Digest != worlds.Digest(2) || !dep.Held || dep.Commit != w.Log(t)[0].SHA {
			t.Fatalf("POST /deploy: %d %s", code, body)
		}
		w.Push(t, 4, "latest", engine.Held)

		var st engine.Status
		if code, body := opsCall(t, srv, "GET", "/status", "", &st); code != 200 {
			t.Fatalf("GET /status: %d %s", code, body)
		}
		dev := st.Environments[0]
		if dev.Name != "dev" || dev.Trigger != "track:latest" || len(dev.Pins) != 1 {
			t.Fatalf("status dev: %+v", dev)
		}
		if p := dev.Pins[0]; !p.Held || p.Hold == nil || p.Hold.Reason != "INC-7" || p.Commit != dep.Commit || p.Cause != ledger.CauseManual {
			t.Fatalf("status dev/server: %+v", p)
		}
		if len(st.Branches) != 1 || st.Branches[0].Tip != dep.Commit {
			t.Fatalf("status branches: %+v", st.Branches)
		}

		var res engine.OpsResult
		code, body = opsCall(t, srv, "POST", "/resume", `{"env":"dev","image":"server"}`, &res)
		if code != 200 || res.Outcome != engine.Pinned || res.Digest != worlds.Digest(4) || res.Held {
			t.Fatalf("POST /resume: %d %s", code, body)
		}

		// A push of another image amends the rolling commit above the
		// manual one, which stays; both dev pins name the amended commit.
		m := w.Message(5, worlds.WebRepo, "latest")
		if r, err := w.Engine.Push(t.Context(), m); err != nil || r.Outcome != engine.Pinned {
			t.Fatalf("push web: %+v, %v", r, err)
		}
		log := w.Log(t)
		if len(log) != 4 || log[1].SHA != dep.Commit || log[0].Parents[0] != dep.Commit {
			t.Fatalf("after resume and a push: %d commits; the manual commit %s must stay below the rolling one", len(log), dep.Commit)
		}
		if code, body := opsCall(t, srv, "GET", "/status", "", &st); code != 200 {
			t.Fatalf("GET /status: %d %s", code, body)
		}
		for _, p := range st.Environments[0].Pins {
			if p.Commit != log[0].SHA {
				t.Errorf("status dev/%s commit %s, want the amended tip %s", p.Image, p.Commit, log[0].SHA)
			}
		}

		var all engine.HistoryPage
		if code, body := opsCall(t, srv, "GET", "/history?env=dev", "", &all); code != 200 || len(all.Entries) != 6 {
			t.Fatalf("GET /history: %d %s", code, body)
		}
		var paged []engine.HistoryEntry
		next := ""
		for pages := 0; pages == 0 || next != ""; pages++ {
			var p engine.HistoryPage
			if code, body := opsCall(t, srv, "GET", "/history?env=dev&limit=2&before="+url.QueryEscape(next), "", &p); code != 200 || pages > 5 {
				t.Fatalf("GET /history page %d: %d %s", pages, code, body)
			}
			paged, next = append(paged, p.Entries...), p.Next
		}
		if !slices.Equal(paged, all.Entries) {
			t.Fatalf("paged history\n got  %+v\n want %+v", paged, all.Entries)
		}

		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if page := rec.Body.String(); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(page, "track:latest") || !strings.Contains(page, log[0].SHA[:7]) || strings.Contains(page, "<form") {
			t.Fatalf("GET /: %d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), page)
		}
	})
}

// failingPins is a ledger whose reads of pins fail: the ledger is down.
type failingPins struct{ ledger.Ledger }

func (failingPins) Pins(context.Context) ([]ledger.Pin, error) {
	return nil, errors.New("connection refused")
}

// TestOpsErrorStatuses: every error an operator can get, as its status with
// {"error"}, and the ops auth.
func TestOpsErrorStatuses(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	w.Push(t, 1, "latest", engine.Pinned)
	open := server.New(server.Options{Engine: w.Engine})
	guarded := server.New(server.Options{Engine: w.Engine, Auth: &server.Auth{
		OpsToken: "s3cret", Audience: "https://pinroll.example", Invokers: []string{"ci@p.iam.gserviceaccount.com"},
		Validate: func(_ context.Context, tok, aud string) (*idtoken.Payload, error) {
			if aud != "https://pinroll.example" || !strings.HasPrefix(tok, "id-") {
				return nil, errors.New("bad token")
			}
			return &idtoken.Payload{Claims: map[string]any{"email": strings.TrimPrefix(tok, "id-"), "email_verified": true}}, nil
		},
	}})
	down := server.New(server.Options{Engine: worlds.OpenLocal(t, failingPins{worlds.OpenBolt(t)}).Engine})
	tests := []struct {
		name         string
		srv          http.Handler
		method, path string
		body         string
		header       []string
		want         int
	}{
		{"malformed body", open, "POST", "/deploy", `{"env":`, nil, 400},
		{"unknown field", open, "POST", "/deploy", `{"env":"dev","image":"server","digets":"x"}`, nil, 400},
		{"two values", open, "POST", "/resume", `{"env":"dev","image":"server"} {}`, nil, 400},
		{"digest and tag", open, "POST", "/deploy", `{"env":"dev","image":"server","digest":"` + worlds.Digest(1) + `","tag":"latest"}`, nil, 400},
		{"bad limit", open, "GET", "/history?limit=ten", "", nil, 400},
		{"bad cursor", open, "GET", "/history?before=%21%21", "", nil, 400},
		{"unknown env", open, "POST", "/deploy", `{"env":"qa","image":"server","rollback":1}`, nil, 404},
		{"unknown image", open, "POST", "/resume", `{"env":"dev","image":"db"}`, nil, 404},
		{"history of unknown image", open, "GET", "/history?image=db", "", nil, 404},
		{"rollback deeper than history", open, "POST", "/deploy", `{"env":"dev","image":"server","rollback":3}`, nil, 409},
		{"unknown digest", open, "POST", "/deploy", `{"env":"dev","image":"server","digest":"` + worlds.Digest(99) + `"}`, nil, 422},
		{"ledger down", down, "GET", "/status", "", nil, 503},
		{"no token", guarded, "GET", "/status", "", nil, 401},
		{"wrong token", guarded, "GET", "/", "", []string{"Authorization", "Bearer nope"}, 401},
		{"invoker not allowed", guarded, "GET", "/history", "", []string{"Authorization", "Bearer id-eve@p.iam.gserviceaccount.com"}, 401},
		{"ops token", guarded, "GET", "/status", "", []string{"Authorization", "Bearer s3cret"}, 200},
		{"allowed invoker", guarded, "GET", "/history", "", []string{"Authorization", "bearer id-ci@p.iam.gserviceaccount.com"}, 200},
		{"healthz needs no auth", guarded, "GET", "/healthz", "", nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := opsCall(t, tc.srv, tc.method, tc.path, tc.body, nil, tc.header...)
			if code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			if code >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Errorf("error body %q: want {\"error\": \"...\"}", body)
				}
			}
		})
	}
	if n := len(w.Log(t)); n != 2 {
		t.Errorf("refused requests committed: %d commits, want 2", n)
	}
}
