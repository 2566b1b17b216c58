package gar

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

const testURL = "http://pinroll.test/gar"

var testTime = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// garJSON is message.data as GAR would publish it, fields left out when "".
func garJSON(action, digest, tag string) []byte {
	b, err := json.Marshal(garData{Action: action, Digest: digest, Tag: tag})
	if err != nil {
		panic(err)
	}
	return b
}

// envelope returns a push envelope around raw data with the given id and
// publish time; "" leaves a field out.
func envelope(id, publishTime string, data []byte) []byte {
	m := map[string]any{}
	if id != "" {
		m["messageId"] = id
	}
	if publishTime != "" {
		m["publishTime"] = publishTime
	}
	if data != nil {
		m["data"] = base64.StdEncoding.EncodeToString(data)
	}
	b, err := json.Marshal(map[string]any{"message": m, "subscription": "projects/proj/subscriptions/s"})
	if err != nil {
		panic(err)
	}
	return b
}

// pushRequest is a Pub/Sub push request with body.
func pushRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testURL, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// rawEvent is a messagePublished CloudEvent around an arbitrary envelope.
func rawEvent(t testing.TB, id string, tm time.Time, env []byte) event.Event {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetType(PubSubEventType)
	e.SetSource("//pubsub.googleapis.com/projects/proj/topics/gcr")
	if !tm.IsZero() {
		e.SetTime(tm)
	}
	// Raw bytes, so malformed envelopes get through unchanged.
	e.SetDataContentType(event.ApplicationJSON)
	e.DataEncoded = env
	return e
}

// binaryRequest writes e as a binary-mode HTTP request with the SDK.
func binaryRequest(t testing.TB, e event.Event) *http.Request {
	t.Helper()
	return writeEvent(binding.WithForceBinary(context.Background()), t, e)
}

// structuredRequest writes e as a structured-mode HTTP request with the SDK.
func structuredRequest(t testing.TB, e event.Event) *http.Request {
	t.Helper()
	return writeEvent(binding.WithForceStructured(context.Background()), t, e)
}

// writeEvent writes e as an HTTP request in the mode ctx forces.
func writeEvent(ctx context.Context, t testing.TB, e event.Event) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, testURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cehttp.WriteRequest(ctx, (*binding.EventMessage)(&e), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// readBack returns r's body and replaces it so r can still be sent.
func readBack(t testing.TB, r *http.Request) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	r.Body = httpBody(buf.Bytes())
	return buf.Bytes()
}

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func httpBody(b []byte) bodyReader { return bodyReader{bytes.NewReader(b)} }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
