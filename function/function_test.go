package function

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/pinroll/pinroll/internal/app/apptest"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/server"
	"github.com/pinroll/pinroll/internal/testing/gittest"
	"github.com/pinroll/pinroll/internal/testing/testlog"
)

const (
	serverRepo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"
	devPath    = "k8s/namespaces/backend/overlays/dev/kustomization.yaml"
)

// fixture is a target over a demo GitOps repo and a bolt ledger.
type fixture struct {
	t    *target
	repo string
	logs *testlog.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	w := apptest.Open(t)
	srv := server.New(server.Options{Engine: w.App.Engine, Logger: w.Log, WebhookSecret: webhookSecret})
	return &fixture{t: &target{eng: w.App.Engine, srv: srv, log: w.Log}, repo: w.Repo, logs: w.Logs}
}

func push(id, digest string) gar.Message {
	return gar.Message{ID: id, PublishTime: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Action: gar.ActionInsert,
		Repository: serverRepo, Digest: digest, Tag: "latest"}
}

func digest(n int) string { return fmt.Sprintf("sha256:%064x", 0xf0_0000+n) }

func garEvent(t *testing.T, m gar.Message) event.Event {
	t.Helper()
	ev, err := gar.NewEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// rawEvent is a messagePublished CloudEvent whose message data is data, valid
// or not.
func rawEvent(t *testing.T, typ, id, data string) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource("//pubsub.googleapis.com/projects/PROJECT/topics/gcr")
	env := map[string]any{"message": map[string]any{"data": base64.StdEncoding.EncodeToString([]byte(data)), "messageId": id}}
	if err := ev.SetData(event.ApplicationJSON, env); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestOnImagePushed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// event returns the event to deliver; it may break the fixture first.
		event   func(t *testing.T, f *fixture) event.Event
		wantErr error // nil: acknowledged
		outcome string
		pinned  string // the digest dev pins afterwards
	}{
		{
			name:    "pinned",
			event:   func(t *testing.T, f *fixture) event.Event { return garEvent(t, push("m1", digest(1))) },
			outcome: `"outcome":"pinned"`,
			pinned:  digest(1),
		},
		{
			name: "malformed data is rejected and acknowledged",
			event: func(t *testing.T, f *fixture) event.Event {
				return rawEvent(t, gar.PubSubEventType, "m2", `{"action":"INSERT","digest":"not a reference"}`)
			},
			outcome: `"outcome":"rejected"`,
		},
		{
			name: "another event type is acknowledged",
			event: func(t *testing.T, f *fixture) event.Event {
				return rawEvent(t, "google.cloud.storage.object.v1.finalized", "m3", `{}`)
			},
			outcome: `"outcome":"rejected"`,
		},
		{
			name: "git unavailable is retried",
			event: func(t *testing.T, f *fixture) event.Event {
				if err := os.Rename(f.repo, f.repo+".away"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Rename(f.repo+".away", f.repo) })
				return garEvent(t, push("m4", digest(4)))
			},
			wantErr: engine.ErrTransient,
			outcome: `"severity":"ERROR"`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			err := f.t.onImagePushed(t.Context(), c.event(t, f))
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("OnImagePushed = %v, want nil (acknowledged)", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("OnImagePushed = %v, want %v", err, c.wantErr)
			}
			logs := f.logs.String()
			if n := strings.Count(logs, `"message":"gar message`); n != 1 {
				t.Errorf("want one log line for the event, got %d:\n%s", n, logs)
			}
			if !strings.Contains(logs, c.outcome) {
				t.Errorf("log lacks %s:\n%s", c.outcome, logs)
			}
			if c.pinned != "" {
				if y := gittest.File(t, f.repo, "main", devPath); !bytes.Contains(y, []byte("digest: "+c.pinned)) {
					t.Errorf("dev overlay does not pin %s:\n%s", c.pinned, y)
				}
			}
		})
	}
}

func TestLazyTargetRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	calls := 0
	want := &target{}
	l := &lazyTarget{open: func(context.Context) (*target, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("ledger unreachable")
		}
		return want, nil
	}}
	if _, err := l.get(t.Context()); err == nil {
		t.Fatal("first get succeeded, want the open error")
	}
	for range 2 {
		if got, err := l.get(t.Context()); err != nil || got != want {
			t.Fatalf("get = %v, %v; want the target", got, err)
		}
	}
	if calls != 2 {
		t.Errorf("open called %d times, want 2 (once more after the failure, then never)", calls)
	}
}

const webhookSecret = "function-test-secret"

func TestOnGitHubWebhook(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := push("v", digest(7))
	m.Tag = "v1.4.0"
	if _, err := server.PushGAR(t.Context(), f.t.eng, m, nil); err != nil {
		t.Fatal(err)
	}
	body := `{"action":"published","release":{"tag_name":"v1.4.0","html_url":"https://github.com/example/backend/releases/tag/v1.4.0"},"repository":{"full_name":"example/backend"}}`
	send := func(secret string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "release")
		req.Header.Set("X-GitHub-Delivery", "d-"+secret)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		rec := httptest.NewRecorder()
		f.t.onGitHubWebhook(rec, req)
		return rec
	}
	if rec := send("wrong"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d %s", rec.Code, rec.Body)
	}
	if rec := send(webhookSecret); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"pinned"`) {
		t.Fatalf("signed release: %d %s", rec.Code, rec.Body)
	}
	prod := string(gittest.File(t, f.repo, "main", "k8s/namespaces/backend/overlays/prod/kustomization.yaml"))
	if !strings.Contains(prod, "newTag: v1.4.0") || !strings.Contains(prod, "digest: "+digest(7)) {
		t.Fatalf("prod overlay:\n%s", prod)
	}
}

// TestOps: the Ops target serves the ops routes behind the ops auth, and
// only them.
func TestOps(t *testing.T) {
	t.Parallel()
	w := apptest.Open(t)
	srv := server.New(server.Options{Engine: w.App.Engine, Logger: w.Log, Auth: &server.Auth{OpsToken: "tok"}})
	f := &target{eng: w.App.Engine, srv: srv, log: w.Log}
	if _, err := server.PushGAR(t.Context(), f.eng, push("o1", digest(1)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := server.PushGAR(t.Context(), f.eng, push("o2", digest(2)), nil); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		f.srv.HandleOps(rec, req)
		return rec
	}
	if rec := call("GET", "/status", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("status without a token: %d", rec.Code)
	}
	rec := call("POST", "/deploy", `{"env":"dev","image":"server","rollback":1}`, "tok")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"outcome":"pinned"`) {
		t.Fatalf("deploy: %d %s", rec.Code, rec.Body)
	}
	if dev := string(gittest.File(t, w.Repo, "main", devPath)); !strings.Contains(dev, digest(1)) {
		t.Fatalf("dev overlay after rollback:\n%s", dev)
	}
	if rec := call("GET", "/", "", "tok"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<html") {
		t.Fatalf("page: %d", rec.Code)
	}
	if rec := call("POST", "/gar", "{}", "tok"); rec.Code != http.StatusNotFound {
		t.Fatalf("/gar on the Ops target: %d, want 404", rec.Code)
	}
}

// TestSquash: the Squash target serves POST /squash at / (where Cloud
// Scheduler may post) and at /squash, behind the ops auth, and nothing else.
func TestSquash(t *testing.T) {
	t.Parallel()
	w := apptest.Open(t)
	srv := server.New(server.Options{Engine: w.App.Engine, Logger: w.Log, Auth: &server.Auth{OpsToken: "tok"}})
	f := &target{eng: w.App.Engine, srv: srv, log: w.Log}
	call := func(method, path, body, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		f.srv.HandleSquash(rec, req)
		return rec
	}
	tests := []struct {
		name, method, path, body, token string
		want                            int
		says                            string
	}{
		{"no token", "POST", "/", "{}", "", http.StatusUnauthorized, `"error"`},
		{"at /", "POST", "/", `{"dry_run":true}`, "tok", http.StatusOK, `"outcome":"nothing"`},
		{"at /squash", "POST", "/squash", `{"env":"dev"}`, "tok", http.StatusOK, `"branch":"main"`},
		{"not the ops routes", "POST", "/deploy", `{}`, "tok", http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		rec := call(tc.method, tc.path, tc.body, tc.token)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.says) {
			t.Errorf("%s: %d %s, want %d with %s", tc.name, rec.Code, rec.Body, tc.want, tc.says)
		}
	}
}
