package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/app/apptest"
	"github.com/pinroll/pinroll/internal/server"
	"github.com/pinroll/pinroll/internal/testing/gittest"
	"github.com/pinroll/pinroll/internal/testing/testlog"
)

const (
	serverRepo    = gittest.DemoRepository
	devPath       = "k8s/namespaces/backend/overlays/dev/kustomization.yaml"
	prodPath      = "k8s/namespaces/backend/overlays/prod/kustomization.yaml"
	webhookSecret = "server-test-secret"
)

// world is pinroll's HTTP front over real parts: the demo GitOps repository
// on disk and a bbolt ledger, both in a temporary directory. Releases of
// example/backend promote to prod.
type world struct {
	srv  http.Handler
	repo string
	logs *testlog.Buffer
}

func newWorld(t testing.TB) *world {
	t.Helper()
	a := apptest.Open(t)
	srv := server.New(server.Options{Engine: a.App.Engine, Logger: a.Log, WebhookSecret: webhookSecret})
	return &world{srv: srv, repo: a.Repo, logs: a.Logs}
}

// reply is an answer of the server.
type reply struct {
	code    int
	outcome string
	body    string
}

func (w *world) do(req *http.Request) reply {
	rec := httptest.NewRecorder()
	w.srv.ServeHTTP(rec, req)
	var v struct {
		Outcome string `json:"outcome"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	return reply{code: rec.Code, outcome: v.Outcome, body: rec.Body.String()}
}

// tip is the commit main points at.
func (w *world) tip(t testing.TB) string {
	t.Helper()
	return gittest.Log(t, w.repo, "main")[0].SHA
}

// digest is a well-formed digest numbered n.
func digest(n int) string { return fmt.Sprintf("sha256:%064x", 0xd0_0000+n) }

// data is message.data of an INSERT of digest with tag ("" for none).
func data(digest, tag string) []byte {
	d := map[string]string{"action": "INSERT", "digest": serverRepo + "@" + digest}
	if tag != "" {
		d["tag"] = serverRepo + ":" + tag
	}
	b, _ := json.Marshal(d)
	return b
}

// pushBody is a Pub/Sub push envelope around data; "" leaves id or
// publishTime out.
func pushBody(id, publishTime string, data []byte) []byte {
	m := map[string]any{"data": base64.StdEncoding.EncodeToString(data)}
	if id != "" {
		m["messageId"] = id
	}
	if publishTime != "" {
		m["publishTime"] = publishTime
	}
	b, _ := json.Marshal(map[string]any{"message": m, "subscription": "projects/p/subscriptions/s"})
	return b
}

func garRequest(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/gar", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// releaseRequest is a release webhook for tag of example/backend, signed
// with sig(body).
func releaseRequest(delivery, tag string, sig func(body []byte) string) *http.Request {
	body := `{"action":"published","release":{"tag_name":"` + tag + `","html_url":"https://github.com/example/backend/releases/tag/` + tag + `"},"repository":{"full_name":"example/backend"}}`
	req := httptest.NewRequest(http.MethodPost, "/github", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "release")
	req.Header.Set("X-GitHub-Delivery", delivery)
	if s := sig([]byte(body)); s != "" {
		req.Header.Set("X-Hub-Signature-256", s)
	}
	return req
}

// now is publishTime as Pub/Sub stamps it, off by skew.
func now(skew time.Duration) string { return time.Now().Add(skew).UTC().Format(time.RFC3339Nano) }

// sign returns the X-Hub-Signature-256 value GitHub would send.
func sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
