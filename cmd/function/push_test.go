package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// TestContainerServesPubSubPush runs the function binary as Cloud Run runs
// OnImagePushed behind infra/'s push subscription: a raw Pub/Sub push
// envelope POSTed to <service URL>/projects/P/topics/gcr. The Functions
// Framework (v1.9.2, getBackgroundEvent) turns the envelope into a CloudEvent
// for the CloudEvent target and takes the event's topic from that path; on
// any other path it still delivers, but with no topic and an unstructured
// WARNING line in the logs. infra/pubsub.tf therefore puts the topic path in
// the push endpoint.
func TestContainerServesPubSubPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function binary")
	}
	t.Parallel()
	repo, config := gittest.SeedDemo(t)
	cfg := filepath.Join(t.TempDir(), "pinroll.yaml")
	writeFile(t, cfg, config)

	base, logs := start(t, buildFunction(t), "FUNCTION_TARGET=OnImagePushed", "PINROLL_CONFIG="+cfg)

	const warning = "failed to extract Pub/Sub topic name"
	cases := []struct {
		name    string
		path    string
		warning bool // the framework complains about the path
	}{
		{name: "infra's push endpoint", path: "/projects/PROJECT/topics/gcr"},
		{name: "a later push", path: "/projects/PROJECT/topics/gcr"},
		{name: "push endpoint without the topic path", path: "/", warning: true},
	}
	for i, c := range cases { // in order: each pin moves the same overlay
		digest := fmt.Sprintf("sha256:%064x", 0xa0+i)
		code := push(t, base+c.path, fmt.Sprintf("push-%d", i), digest)
		y := gittest.File(t, repo, "main", devPath)
		if code/100 != 2 || !bytes.Contains(y, []byte("digest: "+digest)) {
			t.Fatalf("%s: status %d, want 2xx and the dev overlay pinned to %s:\n%s\n%s", c.name, code, digest, y, logs)
		}
		if got := eventually(func() bool { return strings.Contains(logs.String(), warning) }, c.warning); got != c.warning {
			t.Fatalf("%s: the logs mention %q: %v, want %v\n%s", c.name, warning, got, c.warning, logs)
		}
	}
}

// push POSTs the Pub/Sub push envelope of a GAR INSERT of serverRepo@digest
// tagged latest to url, as a push subscription does, and returns the status.
func push(t *testing.T, url, id, digest string) int {
	t.Helper()
	ev, err := gar.NewEvent(gar.Message{ID: id, PublishTime: time.Now().UTC(), Action: gar.ActionInsert,
		Repository: serverRepo, Digest: digest, Tag: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	body := ev.Data() // the CloudEvent's data is the push envelope
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// eventually polls cond for up to 2 s while it differs from want (the
// function's output reaches the buffer through a pipe, maybe after the
// response), and returns its last value.
func eventually(cond func() bool, want bool) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := cond()
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}
