package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	srv := serverFlag(env, fs)
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
	server, err := serverURL(*srv)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/gar", nil)
	if err != nil {
		return fmt.Errorf("server URL %q: %w", *srv, err)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		return fmt.Errorf("encode CloudEvent: %w", err)
	}
	return send(ctx, env, req)
}

// send performs req with the ops credentials (see authorize) and prints the
// server's JSON answer to stdout; a refused request fails with the server's
// error text.
func send(ctx context.Context, env *cliEnv, req *http.Request) error {
	server := req.URL.Scheme + "://" + req.URL.Host
	if err := authorize(ctx, env, req, server); err != nil {
		return err
	}
	body, err := do(env, req)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, strings.TrimSpace(string(body)))
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
