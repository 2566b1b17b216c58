package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pinroll/pinroll/internal/gar"
)

func init() {
	commands["notify"] = command{
		summary: "Send a GAR-shaped CloudEvent for IMAGE@sha256:D to a pinroll server (demos, smoke tests).",
		usage:   "IMAGE@sha256:DIGEST [--tag T] [--server URL] [--config F]",
		run:     notify,
	}
}

func notify(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "notify")
	configFlag(fs)
	tag := fs.String("tag", "", "the tag pushed with the digest (e.g. latest); empty for an untagged push")
	srv := fs.String("server", serverDefault(env), "pinroll server URL (default $PINROLL_SERVER, else http://localhost:8080)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"want exactly one IMAGE@sha256:DIGEST"}
	}
	repo, refTag, digest, err := gar.ParseReference(pos[0])
	if err != nil {
		return usageError{err.Error()}
	}
	if digest == "" {
		return usageError{fmt.Sprintf("%s has no @sha256: digest", pos[0])}
	}
	if *tag == "" {
		*tag = refTag
	}
	msg := gar.Message{
		ID:          newMessageID(),
		PublishTime: time.Now().UTC(),
		Action:      "INSERT",
		Repository:  repo,
		Digest:      digest,
		Tag:         *tag,
	}
	ev, err := gar.NewEvent(msg)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*srv, "/")+"/gar", nil)
	if err != nil {
		return fmt.Errorf("server URL %q: %w", *srv, err)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		return fmt.Errorf("encode CloudEvent: %w", err)
	}
	return send(env, req)
}

// send performs req with the ops token, prints the JSON answer to stdout and
// fails on a non-2xx status.
func send(env *cliEnv, req *http.Request) error {
	if tok := env.getenv("PINROLL_OPS_TOKEN"); tok != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("send to %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintln(env.stdout, strings.TrimSpace(string(body)))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status)
	}
	return nil
}

func serverDefault(env *cliEnv) string {
	if s := env.getenv("PINROLL_SERVER"); s != "" {
		return s
	}
	return "http://localhost:8080"
}

func newMessageID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}
