package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	prodPath   = "k8s/namespaces/backend/overlays/prod/kustomization.yaml"
	sourceRepo = "example/backend"
)

// releaseCLI publishes a release through `pinroll release`, the way the
// README's tour does, and returns the CLI's exit code and output.
func (w *world) releaseCLI(t testing.TB, tag string, extra ...string) (int, string) {
	t.Helper()
	var out strings.Builder
	env := &cliEnv{stdout: &out, stderr: &out, getenv: func(k string) string { return w.env[k] }}
	code := run(t.Context(), env, append([]string{"release", sourceRepo, tag, "--server", w.base}, extra...))
	return code, out.String()
}

// webhook posts a GitHub webhook; secret "" sends no signature.
func (w *world) webhook(t testing.TB, event, delivery, payload, secret string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.base+"/github", bytes.NewReader([]byte(payload)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(payload))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	return w.do(t, req)
}

// releasePayload is a release event as GitHub sends it (the fields pinroll reads).
func releasePayload(action, repo, tag string, draft, prerelease bool) string {
	return fmt.Sprintf(`{"action":%q,"release":{"tag_name":%q,"html_url":"https://github.com/%s/releases/tag/%s","draft":%t,"prerelease":%t,"published_at":"2026-11-23T10:00:00Z"},"repository":{"full_name":%q,"name":%q,"owner":{"login":"example"}},"sender":{"login":"someone"}}`,
		action, tag, repo, tag, draft, prerelease, repo, path.Base(repo))
}

// prodImage renders the prod overlay with the kustomize API and returns the
// server container's image.
func (w *world) prodImage(t testing.TB) string {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	for _, p := range []string{
		"k8s/namespaces/backend/base/kustomization.yaml", "k8s/namespaces/backend/base/deployment.yaml",
		"k8s/namespaces/backend/base/service.yaml", prodPath,
	} {
		if err := fs.WriteFile("/"+p, w.host.file(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/k8s/namespaces/backend/overlays/prod")
	if err != nil {
		t.Fatalf("kustomize build prod: %v", err)
	}
	y, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	_, img, ok := strings.Cut(string(y), "image: ")
	if !ok {
		t.Fatalf("no image in:\n%s", y)
	}
	img, _, _ = strings.Cut(img, "\n")
	return img
}

func TestReleaseAfterPushPinsProd(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		d := digest(42)
		w.deliver(t, binaryCE, push("p", serverRepo, d, "v1.2.3", 1))
		code, out := w.releaseCLI(t, "v1.2.3")
		if code != 0 || !strings.Contains(out, `"pinned"`) {
			t.Fatalf("pinroll release: exit %d: %s", code, out)
		}
		if got, want := w.prodImage(t), serverRepo+":v1.2.3@"+d; got != want {
			t.Fatalf("rendered prod image %q, want %q", got, want)
		}
		c := w.host.log(t)[0]
		if subject(c) != "release(prod): server v1.2.3" {
			t.Errorf("subject %q", subject(c))
		}
		for _, l := range []string{"Pinroll-Kind: release", "Pinroll-Env: prod", "Pinroll-Pin: prod/server=" + d} {
			if !trailer(c, l) {
				t.Errorf("missing %q:\n%s", l, c.Message)
			}
		}
		if !strings.Contains(c.Message, "https://github.com/example/backend/releases/tag/v1.2.3") || !strings.Contains(c.Message, "Digest: "+d) {
			t.Errorf("body lacks the release URL or digest:\n%s", c.Message)
		}
		// The prod overlay's comments survive; the release commit is never amended.
		if !strings.Contains(string(w.host.file(t, prodPath)), "# Prod moves only when") {
			t.Error("prod overlay lost its comment")
		}
		w.deliver(t, binaryCE, push("dev", serverRepo, digest(43), "latest", 2))
		log := w.host.log(t)
		if subject(log[1]) != "release(prod): server v1.2.3" || !isBot(log[0]) {
			t.Fatalf("a dev pin after the release must append above it: %q, %q", subject(log[0]), subject(log[1]))
		}
	})
}

func TestReleaseBeforePushIsPending(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		r := w.webhook(t, "release", "d-1", releasePayload("published", sourceRepo, "v2.0.0", false, false), webhookSecret)
		if r.Status != http.StatusAccepted || r.Outcome != "pending" {
			t.Fatalf("release of an unknown tag answered %+v, want 202 pending", r)
		}
		seed := len(w.host.log(t))
		d := digest(200)
		r = w.deliver(t, pushEnvelope, push("p", serverRepo, d, "v2.0.0", 5))
		if r.Status != 200 || r.Outcome != "pinned" {
			t.Fatalf("the push completing the promotion answered %+v", r)
		}
		if got, want := w.prodImage(t), serverRepo+":v2.0.0@"+d; got != want {
			t.Fatalf("prod image %q, want %q", got, want)
		}
		if n := len(w.host.log(t)); n != seed+1 {
			t.Fatalf("%d new commits, want 1", n-seed)
		}
		// The promotion is settled: pushing the tag again changes nothing.
		if r := w.deliver(t, pushEnvelope, push("p2", serverRepo, d, "v2.0.0", 6)); r.Outcome != "recorded" {
			t.Fatalf("second push of the tag: %+v", r)
		}
	})
}

func TestReleaseWebhookRules(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		w.deliver(t, binaryCE, push("p1", serverRepo, digest(1), "v1.0.0", 1))
		w.deliver(t, binaryCE, push("p2", serverRepo, digest(2), "v0.9.0", 2))
		w.deliver(t, binaryCE, push("p3", serverRepo, digest(3), "v1.1.0-rc.1", 3))
		w.deliver(t, binaryCE, push("p4", serverRepo, digest(4), "nightly", 4))
		if r := w.webhook(t, "release", "ok", releasePayload("published", sourceRepo, "v1.0.0", false, false), webhookSecret); r.Outcome != "pinned" {
			t.Fatalf("baseline release: %+v", r)
		}
		tip := w.host.log(t)[0].SHA
		valid := releasePayload("published", sourceRepo, "v1.0.0", false, false)
		cases := []struct {
			name, event, delivery, payload, secret string
			status                                 int
			outcome                                string
		}{
			{"redelivered webhook", "release", "ok", valid, webhookSecret, 200, "unchanged"},
			{"bad signature", "release", "b1", valid, "not-the-secret", 401, ""},
			{"missing signature", "release", "b2", valid, "", 401, ""},
			{"ping", "ping", "b3", `{"zen":"Keep it logically awesome."}`, webhookSecret, 200, "pong"},
			{"other event", "push", "b4", `{"ref":"refs/heads/main"}`, webhookSecret, 200, "ignored"},
			{"edited action", "release", "b5", releasePayload("edited", sourceRepo, "v1.1.0", false, false), webhookSecret, 200, "ignored"},
			{"draft", "release", "b6", releasePayload("published", sourceRepo, "v1.1.0", true, false), webhookSecret, 200, "ignored"},
			{"prerelease", "release", "b7", releasePayload("published", sourceRepo, "v1.1.0-rc.1", false, true), webhookSecret, 200, "ignored"},
			{"non-semver tag", "release", "b8", releasePayload("published", sourceRepo, "nightly", false, false), webhookSecret, 200, "ignored"},
			{"older version", "release", "b9", releasePayload("published", sourceRepo, "v0.9.0", false, false), webhookSecret, 200, "ignored"},
			{"unknown repository", "release", "b10", releasePayload("published", "someone/else", "v9.0.0", false, false), webhookSecret, 200, "ignored"},
		}
		for _, c := range cases {
			r := w.webhook(t, c.event, c.delivery, c.payload, c.secret)
			if r.Status != c.status || r.Outcome != c.outcome {
				t.Errorf("%s: answered %d %q (%s%s), want %d %q", c.name, r.Status, r.Outcome, r.Reason, r.Error, c.status, c.outcome)
			}
		}
		if now := w.host.log(t)[0].SHA; now != tip {
			t.Fatalf("a release that must not apply moved the branch")
		}
		if got := w.prodImage(t); got != serverRepo+":v1.0.0@"+digest(1) {
			t.Fatalf("prod image %s", got)
		}
	})
}

func TestWebhookWithoutSecretIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0])
	delete(w.env, "PINROLL_WEBHOOK_SECRET")
	w.restart()
	r := w.webhook(t, "release", "x", releasePayload("published", sourceRepo, "v1.0.0", false, false), webhookSecret)
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("no secret configured: answered %+v, want 401", r)
	}
}

func TestPrereleaseAllowed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], func(c string) string { return strings.Replace(c, "release: {}", "release: {prerelease: true}", 1) })
	w.deliver(t, binaryCE, push("p", serverRepo, digest(5), "v1.1.0-rc.1", 1))
	code, out := w.releaseCLI(t, "v1.1.0-rc.1", "--prerelease")
	if code != 0 || !strings.Contains(out, `"pinned"`) {
		t.Fatalf("prerelease with prerelease: true: exit %d %s", code, out)
	}
}

func TestRequireDevSoak(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b, func(c string) string { return strings.Replace(c, "release: {}", "release: {require: dev}", 1) })
			// v1.0.0 was never pinned in dev: blocked.
			w.deliver(t, binaryCE, push("a", serverRepo, digest(10), "v1.0.0", 1))
			r := w.webhook(t, "release", "r1", releasePayload("published", sourceRepo, "v1.0.0", false, false), webhookSecret)
			if r.Status != 200 || r.Outcome != "blocked" || !strings.Contains(r.Reason, "never pinned in dev") {
				t.Fatalf("unsoaked digest: %+v, want blocked with a reason", r)
			}
			if strings.Contains(string(w.host.file(t, prodPath)), digest(10)) {
				t.Fatal("a blocked promotion reached prod")
			}
			// v1.1.0's digest ran in dev first (pushed as latest): promoted.
			w.deliver(t, binaryCE, push("b", serverRepo, digest(11), "latest", 2))
			w.deliver(t, binaryCE, push("c", serverRepo, digest(11), "v1.1.0", 3))
			r = w.webhook(t, "release", "r2", releasePayload("published", sourceRepo, "v1.1.0", false, false), webhookSecret)
			if r.Outcome != "pinned" {
				t.Fatalf("soaked digest: %+v, want pinned", r)
			}
			if got := w.prodImage(t); got != serverRepo+":v1.1.0@"+digest(11) {
				t.Fatalf("prod image %s", got)
			}
		})
	}
}

func TestReleaseResolvedByArtifactRegistry(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		// The ledger never heard of v3.0.0, Artifact Registry has it.
		w.registry.SetTag(serverRepo, "v3.0.0", digest(300))
		if r := w.webhook(t, "release", "ar1", releasePayload("published", sourceRepo, "v3.0.0", false, false), webhookSecret); r.Outcome != "pinned" {
			t.Fatalf("registry lookup: %+v", r)
		}
		if got := w.prodImage(t); got != serverRepo+":v3.0.0@"+digest(300) {
			t.Fatalf("prod image %s", got)
		}
		// A tag neither knows: pending.
		if r := w.webhook(t, "release", "ar2", releasePayload("published", sourceRepo, "v3.1.0", false, false), webhookSecret); r.Status != 202 {
			t.Fatalf("unknown tag: %+v, want 202", r)
		}
		// Registry down: transient (5xx), and the promotion survives to be
		// completed by the push, since GitHub will not retry.
		w.registry.Fail(codes.Unavailable)
		r := w.webhook(t, "release", "ar3", releasePayload("published", sourceRepo, "v3.2.0", false, false), webhookSecret)
		if r.Status < 500 {
			t.Fatalf("registry unavailable: %+v, want 5xx", r)
		}
		w.registry.Fail(codes.OK)
		if r := w.deliver(t, binaryCE, push("late", serverRepo, digest(320), "v3.2.0", 9)); r.Outcome != "pinned" {
			t.Fatalf("the push after the outage: %+v", r)
		}
		if got := w.prodImage(t); got != serverRepo+":v3.2.0@"+digest(320) {
			t.Fatalf("prod image %s", got)
		}
	})
}

// TestPendingHigherReleaseWinsOverLaterHotfix: v1.3.0 waits for its image, a
// hotfix v1.2.5 is published and pinned meanwhile; when v1.3.0's image
// arrives, prod moves up to it (versions order prod, not publication times).
func TestPendingHigherReleaseWinsOverLaterHotfix(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		if r := w.webhook(t, "release", "r130", releasePayload("published", sourceRepo, "v1.3.0", false, false), webhookSecret); r.Outcome != "pending" {
			t.Fatalf("v1.3.0: %+v", r)
		}
		w.deliver(t, binaryCE, push("h", serverRepo, digest(125), "v1.2.5", 1))
		if r := w.webhook(t, "release", "r125", releasePayload("published", sourceRepo, "v1.2.5", false, false), webhookSecret); r.Outcome != "pinned" {
			t.Fatalf("hotfix v1.2.5: %+v", r)
		}
		if r := w.deliver(t, binaryCE, push("n", serverRepo, digest(130), "v1.3.0", 2)); r.Outcome != "pinned" {
			t.Fatalf("the push of v1.3.0: %+v, want pinned", r)
		}
		if got := w.prodImage(t); got != serverRepo+":v1.3.0@"+digest(130) {
			t.Fatalf("prod image %s", got)
		}
	})
}

// TestRequireDevUnblocksWhenDevRunsTheDigest: the release is published first,
// the image's v-tag message arrives before its latest message (GAR sends one
// message per tag, in any order): blocked at first, promoted once dev pins it.
func TestRequireDevUnblocksWhenDevRunsTheDigest(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], func(c string) string { return strings.Replace(c, "release: {}", "release: {require: dev}", 1) })
	if r := w.webhook(t, "release", "r", releasePayload("published", sourceRepo, "v1.2.3", false, false), webhookSecret); r.Status != 202 {
		t.Fatalf("release first: %+v", r)
	}
	if r := w.deliver(t, binaryCE, push("vtag", serverRepo, digest(7), "v1.2.3", 1)); r.Outcome != "blocked" {
		t.Fatalf("v-tag before dev ran it: %+v, want blocked", r)
	}
	if r := w.deliver(t, binaryCE, push("latest", serverRepo, digest(7), "latest", 2)); r.Outcome != "pinned" {
		t.Fatalf("latest: %+v", r)
	}
	if got := w.prodImage(t); got != serverRepo+":v1.2.3@"+digest(7) {
		t.Fatalf("prod image %s, want the release promoted once dev ran its digest", got)
	}
}

// TestReleaseUsesTheImageTagThatExists: release v2.1.0 of an image tagged
// 2.1.0 (no v) pins newTag 2.1.0, a tag the registry really has.
func TestReleaseUsesTheImageTagThatExists(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0])
	w.deliver(t, binaryCE, push("p", serverRepo, digest(21), "2.1.0", 1))
	if r := w.webhook(t, "release", "r", releasePayload("published", sourceRepo, "v2.1.0", false, false), webhookSecret); r.Outcome != "pinned" {
		t.Fatalf("%+v", r)
	}
	if got := w.prodImage(t); got != serverRepo+":2.1.0@"+digest(21) {
		t.Fatalf("prod image %s", got)
	}
	if s := subject(w.host.log(t)[0]); s != "release(prod): server v2.1.0" { // the release, as published
		t.Fatalf("subject %q", s)
	}
}
