package gar

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bodies to Decode as a push request, a binary
// CloudEvent and a structured CloudEvent. Decode must not panic, every error
// must be exactly one of ErrUnreadable and ErrRejected, and every success
// must be a well-formed INSERT (valid digest) or DELETE.
func FuzzDecode(f *testing.F) {
	pt := testTime.Format(time.RFC3339Nano)
	for _, data := range [][]byte{
		garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+":latest"),
		garJSON(ActionInsert, testRepo+"@"+testDigest, ""),
		garJSON(ActionDelete, "", testRepo+":latest"),
		garJSON(ActionInsert, "", testRepo+":latest"),
		[]byte(`{"action":"INSERT","digest":"localhost:5000/a@sha256:0"}`),
	} {
		env := envelope("1", pt, data)
		f.Add(uint8(0), env)
		f.Add(uint8(1), env)
		f.Add(uint8(2), []byte(`{"specversion":"1.0","id":"1","type":"`+PubSubEventType+`","source":"s","data":`+string(env)+`}`))
	}
	f.Add(uint8(0), []byte(`{"message":{"data":"e30=","messageId":"1"}}`))
	f.Add(uint8(2), []byte(`{"specversion":"1.0"}`))
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		r := httptest.NewRequest(http.MethodPost, testURL, bytes.NewReader(body))
		switch mode % 3 {
		case 0:
			r.Header.Set("Content-Type", "application/json")
		case 1:
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Ce-Specversion", "1.0")
			r.Header.Set("Ce-Id", "1")
			r.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/p/topics/gcr")
			r.Header.Set("Ce-Type", PubSubEventType)
		case 2:
			r.Header.Set("Content-Type", "application/cloudevents+json")
		}
		msg, err := Decode(r, 4096)
		if err != nil {
			if errors.Is(err, ErrUnreadable) == errors.Is(err, ErrRejected) {
				t.Fatalf("error %v is not exactly one of ErrUnreadable and ErrRejected", err)
			}
			if errors.Is(err, ErrRejected) && msg.ID == "" {
				t.Fatalf("rejected message %v has no ID", err)
			}
			return
		}
		if msg.ID == "" {
			t.Errorf("message without ID: %+v", msg)
		}
		if err := ValidateRepository(msg.Repository); err != nil {
			t.Errorf("message %+v: %v", msg, err)
		}
		switch msg.Action {
		case ActionInsert:
			if err := ValidateDigest(msg.Digest); err != nil {
				t.Errorf("INSERT %+v: %v", msg, err)
			}
		case ActionDelete:
			if msg.Digest == "" && msg.Tag == "" {
				t.Errorf("DELETE of nothing: %+v", msg)
			}
		default:
			t.Errorf("action %q", msg.Action)
		}
	})
}
