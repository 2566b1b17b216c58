package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/pinroll/pinroll/internal/engine"
)

func init() {
	commands["release"] = command{
		summary: "Send a signed GitHub release webhook for OWNER/REPO vX.Y.Z to a pinroll server (demos, smoke tests).",
		usage:   "OWNER/REPO vX.Y.Z [--prerelease] [--server URL] [--config F]",
		run:     release,
	}
}

func release(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "release")
	configFlag(fs)
	pre := fs.Bool("prerelease", false, "mark the release as a prerelease")
	srv := serverFlag(env, fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"want OWNER/REPO and a tag such as v1.2.3"}
	}
	repo, tag := pos[0], pos[1]
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return usageError{fmt.Sprintf("%q is not OWNER/REPO", repo)}
	}
	if !engine.IsSemver(tag) {
		return usageError{fmt.Sprintf("tag %q is not a release version such as v1.2.3: pinroll promotes semver releases only", tag)}
	}
	secret := env.getenv("PINROLL_WEBHOOK_SECRET")
	if secret == "" {
		return errors.New("PINROLL_WEBHOOK_SECRET is not set: pinroll refuses unsigned webhooks, so set the same secret here and on the server")
	}
	now := github.Timestamp{Time: time.Now().UTC()}
	url := "https://github.com/" + repo + "/releases/tag/" + tag
	body, err := json.Marshal(github.ReleaseEvent{
		Action: github.String("published"),
		Release: &github.RepositoryRelease{
			TagName: github.String(tag), Name: github.String(tag), HTMLURL: github.String(url),
			Draft: github.Bool(false), Prerelease: github.Bool(*pre), CreatedAt: &now, PublishedAt: &now,
		},
		Repo: &github.Repository{
			Name: github.String(name), FullName: github.String(repo), Owner: &github.User{Login: github.String(owner)},
			HTMLURL: github.String("https://github.com/" + repo),
		},
	})
	if err != nil {
		return fmt.Errorf("encode release event: %w", err)
	}
	server, err := serverURL(*srv)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/github", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("server URL %q: %w", *srv, err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.EventTypeHeader, "release")
	req.Header.Set(github.DeliveryIDHeader, newMessageID())
	req.Header.Set(github.SHA256SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return send(ctx, env, req)
}
