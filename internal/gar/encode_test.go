package gar

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// TestRoundTrip sends messages built with NewEvent through the SDK's HTTP
// binding (binary and structured) and as a push request (the event's data
// alone), and decodes them back.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	messages := []struct {
		name string
		msg  Message
	}{
		{name: "insert tagged", msg: Message{ID: "101", PublishTime: testTime, Action: ActionInsert, Repository: testRepo, Digest: testDigest, Tag: "latest"}},
		{name: "insert untagged", msg: Message{ID: "102", PublishTime: testTime, Action: ActionInsert, Repository: testRepo, Digest: testDigest2}},
		{name: "delete tag", msg: Message{ID: "103", PublishTime: testTime, Action: ActionDelete, Repository: testRepo, Tag: "v1.2.3-rc.1"}},
		{name: "delete digest", msg: Message{ID: "104", PublishTime: testTime, Action: ActionDelete, Repository: testRepo, Digest: testDigest}},
		{name: "no publish time", msg: Message{ID: "105", Action: ActionInsert, Repository: testRepo, Digest: testDigest, Tag: "latest"}},
		{name: "nested image", msg: Message{ID: "106", PublishTime: testTime, Action: ActionInsert, Repository: "us-docker.pkg.dev/p/r/team/api", Digest: testDigest, Tag: "main"}},
		{name: "domain-scoped project", msg: Message{ID: "107", PublishTime: testTime, Action: ActionInsert, Repository: "us-docker.pkg.dev/example.com/p/r/api", Digest: testDigest}},
		{name: "local registry with port", msg: Message{ID: "108", PublishTime: testTime.Truncate(time.Second), Action: ActionInsert, Repository: "localhost:5000/a/b", Digest: testDigest, Tag: "dev"}},
	}
	modes := []struct {
		name    string
		request func(t testing.TB, msg Message) *http.Request
	}{
		{name: "binary", request: func(t testing.TB, msg Message) *http.Request {
			e, err := NewEvent(msg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := cehttp.NewHTTPRequestFromEvent(context.Background(), testURL, e)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Header.Get("Ce-Type"); got != PubSubEventType {
				t.Errorf("ce-type = %q", got)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			return r
		}},
		{name: "structured", request: func(t testing.TB, msg Message) *http.Request {
			e, err := NewEvent(msg)
			if err != nil {
				t.Fatal(err)
			}
			r := structuredRequest(t, e)
			var body map[string]json.RawMessage
			if err := json.Unmarshal(readBack(t, r), &body); err != nil {
				t.Fatal(err)
			}
			if d := body["data"]; len(d) == 0 || d[0] != '{' {
				t.Errorf("structured data = %s; want a JSON object as Eventarc sends", d)
			}
			return r
		}},
		{name: "push", request: func(t testing.TB, msg Message) *http.Request {
			// The event's data is the push envelope Pub/Sub POSTs.
			e, err := NewEvent(msg)
			if err != nil {
				t.Fatal(err)
			}
			return pushRequest(e.Data())
		}},
	}
	for _, m := range messages {
		for _, mode := range modes {
			t.Run(m.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				got, err := Decode(mode.request(t, m.msg), 0)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				assertMessage(t, got, m.msg)
			})
		}
	}
}

// TestNewEventShape pins down the fields GAR and Pub/Sub set, which a test
// that only round-trips would not notice.
func TestNewEventShape(t *testing.T) {
	t.Parallel()
	msg := Message{ID: "42", PublishTime: testTime, Action: ActionInsert, Repository: testRepo, Digest: testDigest, Tag: "latest"}
	e, err := NewEvent(msg)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "42" || e.Type() != PubSubEventType || e.Source() != "//pubsub.googleapis.com/projects/proj/topics/gcr" ||
		!e.Time().Equal(testTime) || e.DataContentType() != "application/json" {
		t.Errorf("event context = %v", e.Context)
	}
	var env struct {
		Message      map[string]any `json:"message"`
		Subscription string         `json:"subscription"`
	}
	if err := json.Unmarshal(e.Data(), &env); err != nil {
		t.Fatal(err)
	}
	wantTime := "2025-03-14T15:09:26.535897Z"
	for k, want := range map[string]string{"messageId": "42", "message_id": "42", "publishTime": wantTime, "publish_time": wantTime} {
		if env.Message[k] != want {
			t.Errorf("message.%s = %v; want %q", k, env.Message[k], want)
		}
	}
	if !strings.HasPrefix(env.Subscription, "projects/proj/subscriptions/") {
		t.Errorf("subscription = %q", env.Subscription)
	}
	data, err := EncodeData(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"INSERT","digest":"` + testRepo + "@" + testDigest + `","tag":"` + testRepo + `:latest"}`
	if string(data) != want {
		t.Errorf("EncodeData = %s\nwant         %s", data, want)
	}
	if env.Message["data"] != b64(data) {
		t.Errorf("message.data = %v; want base64 of %s", env.Message["data"], data)
	}
}

func TestNewEventInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		msg     Message
		wantErr error // nil: any error
	}{
		{name: "no id", msg: Message{Action: ActionInsert, Repository: testRepo, Digest: testDigest}},
		{name: "insert without digest", msg: Message{ID: "1", Action: ActionInsert, Repository: testRepo, Tag: "latest"}, wantErr: ErrRejected},
		{name: "no action", msg: Message{ID: "1", Repository: testRepo, Digest: testDigest}, wantErr: ErrRejected},
		{name: "bad digest", msg: Message{ID: "1", Action: ActionInsert, Repository: testRepo, Digest: "sha256:abc"}, wantErr: ErrRejected},
		{name: "bad repository", msg: Message{ID: "1", Action: ActionInsert, Repository: "server", Digest: testDigest}, wantErr: ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewEvent(tt.msg); err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("NewEvent error = %v; want %v", err, tt.wantErr)
			}
		})
	}
}
