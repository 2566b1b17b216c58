package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/idtoken"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/server"
	"github.com/pinroll/pinroll/internal/testing/worlds"
)

// brokenHistory is a repository whose history cannot be read: no squash
// report can be made.
type brokenHistory struct{ gitops.Repo }

func (brokenHistory) History(context.Context, string, func(gitops.Commit) bool, ...string) ([]gitops.Snapshot, error) {
	return nil, errors.New("connection reset")
}

// humanCommit adds a file to main as a person would.
func humanCommit(t *testing.T, r gitops.Repo) {
	t.Helper()
	ctx := t.Context()
	tip, err := r.Read(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	sig := gitops.Signature{Name: "Ada", Email: "ada@example.com", When: time.Now().Add(-time.Minute)}
	sha, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: tip.Commit.Tree, Files: map[string][]byte{"NOTES.md": []byte("notes\n")},
		Parents: []string{tip.Commit.SHA}, Message: "notes\n", Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MoveBranch(ctx, "main", tip.Commit.SHA, sha); err != nil {
		t.Fatal(err)
	}
}

type squashAnswer struct {
	Reports []engine.SquashReport `json:"reports"`
}

// TestSquashRoute: POST /squash statuses, its auth (ops token, the
// scheduler's ID token), the function target's paths, and a squash that
// moves main with its report.
func TestSquashRoute(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	w.Push(t, 1, "latest", engine.Pinned)
	humanCommit(t, w.Repo)
	w.Push(t, 2, "latest", engine.Pinned)
	tip := w.Log(t)[0].SHA
	auth := &server.Auth{
		OpsToken: "s3cret", Audience: "https://squash.example", Invokers: []string{"scheduler@p.iam.gserviceaccount.com"},
		Validate: func(_ context.Context, tok, aud string) (*idtoken.Payload, error) {
			if aud != "https://squash.example" || !strings.HasPrefix(tok, "id-") {
				return nil, errors.New("bad token")
			}
			return &idtoken.Payload{Claims: map[string]any{"email": strings.TrimPrefix(tok, "id-"), "email_verified": true}}, nil
		},
	}
	open := server.New(server.Options{Engine: w.Engine})
	guarded := server.New(server.Options{Engine: w.Engine, Auth: auth})
	fn := http.HandlerFunc(guarded.HandleSquash)
	broken := server.New(server.Options{Engine: engine.New(engine.Options{Config: w.Engine.Config(), Ledger: w.Ledger, Repo: brokenHistory{w.Repo}})})
	scheduler := []string{"Authorization", "Bearer id-scheduler@p.iam.gserviceaccount.com"}
	tests := []struct {
		name         string
		srv          http.Handler
		method, path string
		body         string
		header       []string
		want         int
		reports      int // with want 200: how many reports
	}{
		{"dry run", open, "POST", "/squash", `{"dry_run":true}`, nil, 200, 1},
		{"dry run of an env", open, "POST", "/squash", `{"env":"dev","dry_run":true}`, nil, 200, 1},
		{"malformed body", open, "POST", "/squash", `{"env":`, nil, 400, 0},
		{"unknown field", open, "POST", "/squash", `{"envs":"dev"}`, nil, 400, 0},
		{"unknown env", open, "POST", "/squash", `{"env":"qa"}`, nil, 404, 0},
		{"no report made", broken, "POST", "/squash", `{}`, nil, 503, 0},
		{"no token", guarded, "POST", "/squash", `{"dry_run":true}`, nil, 401, 0},
		{"wrong token", guarded, "POST", "/squash", `{"dry_run":true}`, []string{"Authorization", "Bearer nope"}, 401, 0},
		{"ops token", guarded, "POST", "/squash", `{"dry_run":true}`, []string{"Authorization", "Bearer s3cret"}, 200, 1},
		{"GET is not a squash", open, "GET", "/squash", "", nil, 405, 0},
		{"function: no token", fn, "POST", "/", `{}`, nil, 401, 0},
		{"function: other routes", fn, "GET", "/status", "", scheduler, 404, 0},
		{"function: healthz", fn, "GET", "/healthz", "", nil, 200, -1},
		{"function: scheduler at /squash", fn, "POST", "/squash", `{"dry_run":true}`, scheduler, 200, 1},
	}
	for _, tc := range tests {
		var got squashAnswer
		code, body := opsCall(t, tc.srv, tc.method, tc.path, tc.body, &got, tc.header...)
		if code != tc.want || (code == 200 && tc.reports >= 0 && len(got.Reports) != tc.reports) {
			t.Errorf("%s: %s %s: %d %s, want %d with %d reports", tc.name, tc.method, tc.path, code, body, tc.want, tc.reports)
		}
		if code == 200 && tc.reports > 0 && (got.Reports[0].Outcome != gitops.SquashSquashed || !got.Reports[0].DryRun || got.Reports[0].OldTip != tip) {
			t.Errorf("%s: report %s", tc.name, body)
		}
	}
	if now := w.Log(t)[0].SHA; now != tip {
		t.Fatalf("dry runs and refused requests moved main to %s", now)
	}

	// The scheduler's call: an empty body at / squashes every branch.
	var got squashAnswer
	code, body := opsCall(t, fn, "POST", "/", "", &got, scheduler...)
	if code != 200 || len(got.Reports) != 1 {
		t.Fatalf("POST / (function): %d %s", code, body)
	}
	rep := got.Reports[0]
	log := w.Log(t)
	if rep.Outcome != gitops.SquashSquashed || rep.DryRun || rep.NewTip != log[0].SHA || rep.OldTip != tip || rep.Folded != 2 || rep.Replayed != 1 ||
		!strings.HasPrefix(rep.BackupRef, "refs/pinroll/backup/main/") || len(log) != 3 {
		t.Fatalf("squash: %s; log %d commits, tip %s", body, len(log), log[0].SHA)
	}
	for _, key := range []string{`"branch"`, `"outcome"`, `"dry_run"`, `"base"`, `"old_tip"`, `"new_tip"`, `"backup_ref"`, `"folded"`, `"replayed"`, `"pins"`, `"reason"`} {
		if !strings.Contains(body, key) {
			t.Errorf("report lacks %s: %s", key, body)
		}
	}
	var st engine.Status
	if code, body := opsCall(t, open, "GET", "/status", "", &st); code != 200 || !strings.Contains(string(st.Branches[0].LastSquash), rep.NewTip) {
		t.Fatalf("GET /status after the squash: %d %s", code, body)
	}
}
