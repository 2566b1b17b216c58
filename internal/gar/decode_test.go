package gar

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	const id = "1234567890"
	pt := testTime.Format(time.RFC3339Nano)
	insertTagged := garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+":latest")
	wantTagged := Message{ID: id, PublishTime: testTime, Action: ActionInsert, Repository: testRepo, Digest: testDigest, Tag: "latest"}

	// reject builds a push request whose envelope is fine but whose data is not.
	reject := func(data []byte) func(testing.TB) *http.Request {
		return func(testing.TB) *http.Request { return pushRequest(envelope(id, pt, data)) }
	}
	push := func(body string) func(testing.TB) *http.Request {
		return func(testing.TB) *http.Request { return pushRequest([]byte(body)) }
	}

	tests := []struct {
		name    string
		req     func(t testing.TB) *http.Request
		want    Message // compared when wantErr is nil
		wantErr error   // ErrUnreadable, ErrRejected or ErrTooLarge
		errText string  // substring of the error
	}{
		// Pub/Sub push envelopes.
		{name: "push insert tagged", req: reject(insertTagged), want: wantTagged},
		{name: "push insert untagged", req: reject(garJSON(ActionInsert, testRepo+"@"+testDigest, "")),
			want: Message{ID: id, PublishTime: testTime, Action: ActionInsert, Repository: testRepo, Digest: testDigest}},
		{name: "push delete tag only", req: reject(garJSON(ActionDelete, "", testRepo+":v1.0.0")),
			want: Message{ID: id, PublishTime: testTime, Action: ActionDelete, Repository: testRepo, Tag: "v1.0.0"}},
		{name: "push delete digest only", req: reject(garJSON(ActionDelete, testRepo+"@"+testDigest, "")),
			want: Message{ID: id, PublishTime: testTime, Action: ActionDelete, Repository: testRepo, Digest: testDigest}},
		{name: "push nested image and port-less host", req: reject(garJSON(ActionInsert, "us-docker.pkg.dev/p/r/team/api@"+testDigest, "us-docker.pkg.dev/p/r/team/api:main")),
			want: Message{ID: id, PublishTime: testTime, Action: ActionInsert, Repository: "us-docker.pkg.dev/p/r/team/api", Digest: testDigest, Tag: "main"}},
		{name: "push snake_case id and time",
			req:  push(`{"message":{"data":"` + b64(insertTagged) + `","message_id":"` + id + `","publish_time":"` + pt + `"},"subscription":"projects/p/subscriptions/s"}`),
			want: wantTagged},
		{name: "push both spellings, camelCase wins",
			req:  push(`{"message":{"data":"` + b64(insertTagged) + `","messageId":"` + id + `","message_id":"other","publishTime":"` + pt + `","publish_time":"2001-01-01T00:00:00Z"}}`),
			want: wantTagged},
		{name: "push without publishTime gives zero time", req: push(string(envelope(id, "", insertTagged))),
			want: Message{ID: id, Action: ActionInsert, Repository: testRepo, Digest: testDigest, Tag: "latest"}},
		{name: "push with attributes and unknown fields",
			req:  push(`{"message":{"attributes":{"k":"v"},"data":"` + b64(insertTagged) + `","messageId":"` + id + `","publishTime":"` + pt + `","orderingKey":""},"subscription":"s","deliveryAttempt":3}`),
			want: wantTagged},
		{name: "push publishTime with offset is normalised to UTC",
			req:  push(string(envelope(id, testTime.In(time.FixedZone("JST", 9*3600)).Format(time.RFC3339Nano), insertTagged))),
			want: wantTagged},
		{name: "push unpadded base64",
			req:  push(`{"message":{"data":"` + strings.TrimRight(b64(insertTagged), "=") + `","messageId":"` + id + `","publishTime":"` + pt + `"}}`),
			want: wantTagged},
		{name: "push without content type", req: func(testing.TB) *http.Request {
			r := pushRequest(envelope(id, pt, insertTagged))
			r.Header.Del("Content-Type")
			return r
		}, want: wantTagged},

		// CloudEvents, binary mode.
		{name: "binary insert tagged", req: func(t testing.TB) *http.Request {
			return binaryRequest(t, rawEvent(t, id, testTime, envelope(id, pt, insertTagged)))
		}, want: wantTagged},
		{name: "binary envelope without id and time falls back to ce-id and ce-time", req: func(t testing.TB) *http.Request {
			return binaryRequest(t, rawEvent(t, id, testTime, envelope("", "", insertTagged)))
		}, want: wantTagged},
		{name: "binary wrong type", req: func(t testing.TB) *http.Request {
			e := rawEvent(t, id, testTime, envelope(id, pt, insertTagged))
			e.SetType("google.cloud.storage.object.v1.finalized")
			return binaryRequest(t, e)
		}, wantErr: ErrUnreadable, errText: `CloudEvent type "google.cloud.storage.object.v1.finalized", want "google.cloud.pubsub.topic.v1.messagePublished"`},
		{name: "binary without ce-id", req: func(t testing.TB) *http.Request {
			r := binaryRequest(t, rawEvent(t, id, testTime, envelope(id, pt, insertTagged)))
			r.Header.Del("Ce-Id")
			return r
		}, wantErr: ErrUnreadable, errText: "invalid CloudEvent"},
		{name: "binary bad ce-time", req: func(t testing.TB) *http.Request {
			r := binaryRequest(t, rawEvent(t, id, testTime, envelope(id, pt, insertTagged)))
			r.Header.Set("Ce-Time", "yesterday")
			return r
		}, wantErr: ErrUnreadable, errText: "CloudEvent"},
		{name: "binary unknown specversion", req: func(t testing.TB) *http.Request {
			r := binaryRequest(t, rawEvent(t, id, testTime, envelope(id, pt, insertTagged)))
			r.Header.Set("Ce-Specversion", "9.9")
			return r
		}, wantErr: ErrUnreadable, errText: `unsupported CloudEvents specversion "9.9"`},
		{name: "binary truncated envelope", req: func(t testing.TB) *http.Request {
			env := envelope(id, pt, insertTagged)
			return binaryRequest(t, rawEvent(t, id, testTime, env[:len(env)/2]))
		}, wantErr: ErrUnreadable, errText: "Pub/Sub envelope"},
		{name: "binary rejected data keeps id", req: func(t testing.TB) *http.Request {
			return binaryRequest(t, rawEvent(t, id, testTime, envelope("", "", garJSON(ActionInsert, "", ""))))
		}, want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "INSERT without digest"},

		// CloudEvents, structured mode.
		{name: "structured insert tagged", req: func(t testing.TB) *http.Request {
			return structuredRequest(t, rawEvent(t, id, testTime, envelope(id, pt, insertTagged)))
		}, want: wantTagged},
		{name: "structured with data_base64", req: func(testing.TB) *http.Request {
			r := pushRequest([]byte(`{"specversion":"1.0","id":"` + id + `","type":"` + PubSubEventType +
				`","source":"//pubsub.googleapis.com/projects/p/topics/gcr","datacontenttype":"application/json","data_base64":"` +
				b64(envelope(id, pt, insertTagged)) + `"}`))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			return r
		}, want: wantTagged},
		{name: "structured wrong type", req: func(t testing.TB) *http.Request {
			e := rawEvent(t, id, testTime, envelope(id, pt, insertTagged))
			e.SetType("com.example.other")
			return structuredRequest(t, e)
		}, wantErr: ErrUnreadable, errText: `CloudEvent type "com.example.other"`},
		{name: "structured not JSON", req: func(testing.TB) *http.Request {
			r := pushRequest([]byte(`{"specversion":"1.0",`))
			r.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
			return r
		}, wantErr: ErrUnreadable, errText: "decode CloudEvent"},
		{name: "structured without data", req: func(testing.TB) *http.Request {
			r := pushRequest([]byte(`{"specversion":"1.0","id":"1","type":"` + PubSubEventType + `","source":"s"}`))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			return r
		}, wantErr: ErrUnreadable, errText: "no data"},
		{name: "batch", req: func(testing.TB) *http.Request {
			r := pushRequest([]byte(`[]`))
			r.Header.Set("Content-Type", "application/cloudevents-batch+json")
			return r
		}, wantErr: ErrUnreadable, errText: "batches are not supported"},

		// Unreadable envelopes.
		{name: "empty body", req: push(""), wantErr: ErrUnreadable, errText: "empty body"},
		{name: "nil body", req: func(testing.TB) *http.Request {
			r := pushRequest(nil)
			r.Body = nil
			return r
		}, wantErr: ErrUnreadable, errText: "empty body"},
		{name: "not JSON", req: push("hello"), wantErr: ErrUnreadable, errText: "Pub/Sub envelope"},
		{name: "truncated JSON", req: func(testing.TB) *http.Request {
			env := envelope(id, pt, insertTagged)
			return pushRequest(env[:len(env)-10])
		}, wantErr: ErrUnreadable, errText: "unexpected end of JSON input"},
		{name: "trailing garbage", req: push(string(envelope(id, pt, insertTagged)) + "{}"), wantErr: ErrUnreadable},
		{name: "JSON array", req: push(`[1,2]`), wantErr: ErrUnreadable},
		{name: "no message", req: push(`{"subscription":"s"}`), wantErr: ErrUnreadable, errText: `no "message"`},
		{name: "message is a string", req: push(`{"message":"x"}`), wantErr: ErrUnreadable},
		{name: "GAR data posted raw", req: push(string(insertTagged)), wantErr: ErrUnreadable, errText: `no "message"`},
		{name: "no messageId", req: push(string(envelope("", pt, insertTagged))), wantErr: ErrUnreadable, errText: "no messageId"},
		{name: "bad publishTime", req: push(string(envelope(id, "2025-13-01", insertTagged))), want: Message{ID: id}, wantErr: ErrRejected, errText: "publishTime"},
		{name: "data not base64", req: push(`{"message":{"data":"!!!","messageId":"1"}}`), want: Message{ID: "1"}, wantErr: ErrRejected, errText: "not base64"},
		{name: "data not a string", req: push(`{"message":{"data":{"action":"INSERT"},"messageId":"1"}}`), wantErr: ErrUnreadable},
		{name: "body read fails midway", req: func(testing.TB) *http.Request {
			env := envelope(id, pt, insertTagged)
			r := pushRequest(nil)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(env[:20]), iotest.ErrReader(io.ErrUnexpectedEOF)))
			return r
		}, wantErr: ErrUnreadable, errText: "read body"},

		// Rejected: fine envelope, bad data.
		{name: "no data", req: reject(nil), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "has no data"},
		{name: "data not JSON", req: reject([]byte("INSERT " + testRepo)), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "not a JSON object"},
		{name: "data JSON array", req: reject([]byte(`["INSERT"]`)), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "not a JSON object"},
		{name: "data wrong field type", req: reject([]byte(`{"action":1}`)), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected},
		{name: "data null", req: reject([]byte(`null`)), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: `no "action"`},
		{name: "missing action", req: reject(garJSON("", testRepo+"@"+testDigest, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: `no "action"`},
		{name: "unknown action", req: reject(garJSON("UPDATE", testRepo+"@"+testDigest, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: `unknown action "UPDATE"`},
		{name: "lowercase action", req: reject(garJSON("insert", testRepo+"@"+testDigest, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "unknown action"},
		{name: "INSERT without digest", req: reject(garJSON(ActionInsert, "", testRepo+":latest")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "INSERT without digest"},
		{name: "DELETE without digest or tag", req: reject(garJSON(ActionDelete, "", "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "DELETE without digest or tag"},
		{name: "uppercase hex", req: reject(garJSON(ActionInsert, testRepo+"@sha256:"+strings.ToUpper(testDigest[7:]), "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "lowercase hex"},
		{name: "short hex", req: reject(garJSON(ActionInsert, testRepo+"@"+testDigest[:40], "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "digest"},
		{name: "sha512 digest", req: reject(garJSON(ActionInsert, testRepo+"@sha512:"+strings.Repeat("ab", 64), "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "digest"},
		{name: "bare digest, not a reference", req: reject(garJSON(ActionInsert, testDigest, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "digest"},
		{name: "digest field without digest", req: reject(garJSON(ActionInsert, testRepo, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "is not REPOSITORY@sha256:HEX"},
		{name: "digest field with tag", req: reject(garJSON(ActionInsert, testRepo+":latest@"+testDigest, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "is not REPOSITORY@sha256:HEX"},
		{name: "tag field without tag", req: reject(garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo)), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "is not REPOSITORY:TAG"},
		{name: "tag field with digest", req: reject(garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+":latest@"+testDigest)), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "is not REPOSITORY:TAG"},
		{name: "bad tag", req: reject(garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+":-x")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "tag"},
		{name: "digest and tag name different repositories", req: reject(garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+"-other:latest")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "different repositories"},
		{name: "reference without host", req: reject(garJSON(ActionInsert, "backend/server@"+testDigest, "")), want: Message{ID: id, PublishTime: testTime}, wantErr: ErrRejected, errText: "not a registry host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(tt.req(t), 0)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				assertMessage(t, got, tt.want)
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode error = %v; want errors.Is %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrUnreadable) == errors.Is(err, ErrRejected) {
				t.Errorf("Decode error %v must be exactly one of ErrUnreadable and ErrRejected", err)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("Decode error = %q; want it to contain %q", err, tt.errText)
			}
			if tt.wantErr == ErrRejected {
				assertMessage(t, got, tt.want) // the id and time survive
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	t.Parallel()
	body := envelope("1", testTime.Format(time.RFC3339Nano), garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+":latest"))
	limit := int64(len(body))
	tests := []struct {
		name    string
		req     func() *http.Request
		limit   int64
		wantErr bool
	}{
		{name: "exactly the limit", limit: limit, req: func() *http.Request { return pushRequest(body) }},
		{name: "one byte over, Content-Length known", limit: limit - 1, wantErr: true,
			req: func() *http.Request { return pushRequest(body) }},
		{name: "one byte over, length unknown", limit: limit - 1, wantErr: true, req: func() *http.Request {
			r := pushRequest(nil)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), -1
			return r
		}},
		{name: "lying Content-Length", limit: limit - 1, wantErr: true, req: func() *http.Request {
			r := pushRequest(body)
			r.ContentLength = 10
			return r
		}},
		{name: "server's own MaxBytesReader", limit: 1 << 20, wantErr: true, req: func() *http.Request {
			r := pushRequest(body)
			r.ContentLength = -1
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 16)
			return r
		}},
		{name: "default limit", limit: 0, wantErr: true, req: func() *http.Request {
			return pushRequest(bytes.Repeat([]byte(" "), DefaultMaxBytes+1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(tt.req(), tt.limit)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrUnreadable) {
				t.Fatalf("Decode error = %v; want ErrTooLarge and ErrUnreadable", err)
			}
		})
	}
}

func TestParseData(t *testing.T) {
	t.Parallel()
	// ParseData is exercised case by case through TestDecode; here only what
	// Decode adds nothing to: the returned message carries no id or time.
	got, err := ParseData(garJSON(ActionInsert, testRepo+"@"+testDigest, testRepo+":latest"))
	if err != nil {
		t.Fatal(err)
	}
	assertMessage(t, got, Message{Action: ActionInsert, Repository: testRepo, Digest: testDigest, Tag: "latest"})
}

func assertMessage(t testing.TB, got, want Message) {
	t.Helper()
	if !got.PublishTime.Equal(want.PublishTime) || got.PublishTime.Location() != time.UTC {
		t.Errorf("PublishTime = %v; want %v in UTC", got.PublishTime, want.PublishTime)
	}
	got.PublishTime, want.PublishTime = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("Message = %+v\nwant      %+v", got, want)
	}
}
