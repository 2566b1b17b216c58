package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gar"
)

// Encodings FuzzGAR wraps its input in (mode % 4).
const (
	fuzzPush       = iota // Pub/Sub push envelope: id, publishTime and data in the body
	fuzzBinary            // binary CloudEvent: ce-id and ce-time headers, the envelope (no id, no time) as the body
	fuzzStructured        // structured CloudEvent: id, time and the envelope in one JSON document
	fuzzRaw               // data is the whole body, sent as JSON
	fuzzModes
)

// FuzzGAR drives the whole POST /gar handler, over the demo repository on
// disk and a bbolt ledger, with random envelopes, ids, times and data. The
// invariants: it never panics; it never answers 5xx (the backends are local
// and healthy, so no failure is transient); a 4xx or a rejected answer moves
// nothing (the branch tip stays); a publish time more than 10 minutes ahead
// is never applied.
func FuzzGAR(f *testing.F) {
	valid := data(digest(1), "latest")
	for _, s := range []struct {
		mode     uint8
		id, time string
		data     []byte
	}{
		{fuzzPush, "1", "2026-11-23T09:00:00Z", valid},
		{fuzzBinary, "2", "2026-11-23T09:00:01Z", valid},
		{fuzzStructured, "3", "2026-11-23T09:00:02.123456789Z", data(digest(2), "latest")},
		{fuzzPush, "4", "", data(digest(3), "")},
		{fuzzPush, "5", "2026-11-23T09:00:03Z", []byte(`{"action":"DELETE","tag":"` + serverRepo + `:latest"}`)},
		{fuzzPush, "6", "2026-11-23T09:00:04Z", data(digest(4), "v1.2.3")},
		{fuzzPush, "far", "9999-12-31T23:59:59Z", valid},
		{fuzzBinary, "far", "9999-12-31T23:59:59Z", valid},
		{fuzzStructured, "far", "9999-12-31T23:59:59Z", valid},
		{fuzzPush, "a\x00b", "2026-11-23T09:00:05Z", valid},
		{fuzzStructured, "\xff\xfe", "2026-11-23T09:00:06Z", valid},
		{fuzzPush, "../__x__/.", "2026-11-23T09:00:07Z", valid},
		{fuzzPush, strings.Repeat("9", 2000), "2026-11-23T09:00:08Z", valid},
		{fuzzPush, "7", "not a time", valid},
		{fuzzPush, "8", "2026-11-23T09:00:09Z", []byte(`{"action":"INSERT","digest":"` + serverRepo + `@sha256:0"}`)},
		{fuzzPush, "9", "2026-11-23T09:00:10Z", []byte(`not json`)},
		{fuzzRaw, "", "", []byte(`{"message":{"data":"e30=","messageId":"1"}}`)},
		{fuzzRaw, "", "", []byte(`{"message":{"data":"","messageId":""},"subscription":""}`)},
		{fuzzRaw, "", "", []byte(`{"specversion":"1.0","type":"` + gar.PubSubEventType + `","id":"x","source":"s"}`)},
		{fuzzRaw, "", "", []byte(`[]`)},
	} {
		f.Add(s.mode, s.id, s.time, s.data)
	}
	w := newWorld(f)
	f.Fuzz(func(t *testing.T, mode uint8, id, publishTime string, msgData []byte) {
		req := fuzzRequest(mode%fuzzModes, id, publishTime, msgData)
		before := w.tip(t)
		r := w.do(req)
		after := w.tip(t)
		switch {
		case r.code >= 500:
			t.Fatalf("answer %d %s: nothing here is transient", r.code, r.body)
		case (r.code >= 400 || r.outcome == "rejected") && after != before:
			t.Fatalf("answer %d %s moved the branch from %s to %s", r.code, r.body, before, after)
		case r.code < 300 && r.outcome == "":
			t.Fatalf("answer %d without an outcome: %s", r.code, r.body)
		}
		if at, err := time.Parse(time.RFC3339Nano, publishTime); err == nil && mode%fuzzModes != fuzzRaw &&
			at.After(time.Now().Add(11*time.Minute)) && r.code < 300 && r.outcome != "rejected" && r.outcome != "ignored" {
			t.Fatalf("publishTime %s, far ahead, answered %s", publishTime, r.body)
		}
	})
}

// fuzzRequest builds a POST /gar request carrying id, publishTime ("" for
// none) and message data in one of the encodings.
func fuzzRequest(mode uint8, id, publishTime string, msgData []byte) *http.Request {
	switch mode {
	case fuzzBinary:
		req := garRequest(pushBody("", "", msgData))
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Type", gar.PubSubEventType)
		req.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/PROJECT/topics/gcr")
		req.Header.Set("Ce-Id", id)
		if publishTime != "" {
			req.Header.Set("Ce-Time", publishTime)
		}
		return req
	case fuzzStructured:
		ev := map[string]any{
			"specversion": "1.0", "type": gar.PubSubEventType, "id": id,
			"source": "//pubsub.googleapis.com/projects/PROJECT/topics/gcr", "datacontenttype": "application/json",
			"data": json.RawMessage(pushBody("", "", msgData)),
		}
		if publishTime != "" {
			ev["time"] = publishTime
		}
		body, _ := json.Marshal(ev)
		req := httptest.NewRequest(http.MethodPost, "/gar", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		return req
	case fuzzRaw:
		return garRequest(msgData)
	default:
		return garRequest(pushBody(id, publishTime, msgData))
	}
}
