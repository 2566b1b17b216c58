package gar

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pinroll/pinroll/internal/logging"
)

// Actions Artifact Registry publishes.
const (
	// ActionInsert is an image pushed or a tag added; Digest is set.
	ActionInsert = "INSERT"
	// ActionDelete is an image or tag deleted; Digest or Tag is set.
	ActionDelete = "DELETE"
)

// PubSubEventType is the CloudEvent type Eventarc and Cloud Run functions use
// for a Pub/Sub message.
const PubSubEventType = "google.cloud.pubsub.topic.v1.messagePublished"

// DefaultMaxBytes is the body limit [Decode] applies when given a limit <= 0.
// Artifact Registry notifications are a few hundred bytes; the envelope
// around them is about as much again.
const DefaultMaxBytes = 64 << 10

// Decode errors. Every error [Decode] returns wraps exactly one of
// [ErrUnreadable] and [ErrRejected]; [ErrTooLarge] comes with [ErrUnreadable].
var (
	// ErrUnreadable means the request is not a decodable notification: not
	// JSON, truncated, not a Pub/Sub envelope, a CloudEvent of another type, or
	// too large. An HTTP server answers 4xx.
	ErrUnreadable = errors.New("unreadable notification")
	// ErrTooLarge means the body exceeded the size limit (HTTP 413). It is
	// always wrapped together with [ErrUnreadable].
	ErrTooLarge = errors.New("body too large")
	// ErrRejected means the Pub/Sub envelope is fine but its data is not a
	// valid Artifact Registry notification. The message can never succeed, so
	// an HTTP server answers 2xx (outcome "rejected") to stop redelivery and
	// logs the error, whose text gives the reason.
	ErrRejected = errors.New("notification rejected")
)

// Message is one Artifact Registry notification as delivered by Pub/Sub.
type Message struct {
	// ID is the Pub/Sub messageId (the CloudEvent id).
	ID string
	// PublishTime is the Pub/Sub publishTime (the CloudEvent time), in UTC.
	// It is the zero time when the delivery carried none; the caller decides
	// what that means for ordering.
	PublishTime time.Time
	// Action is ActionInsert or ActionDelete.
	Action string
	// Repository is the image repository without tag or digest, such as
	// asia-northeast2-docker.pkg.dev/PROJECT/backend/server.
	Repository string
	// Digest is "sha256:<64 hex>", or "" for a DELETE naming only a tag.
	Digest string
	// Tag is the tag pushed or deleted, or "" for an untagged push.
	Tag string
}

// garData is message.data as Artifact Registry publishes it. Both references
// are full: HOST/P/R/IMG@sha256:HEX and HOST/P/R/IMG:TAG.
type garData struct {
	Action string `json:"action"`
	Digest string `json:"digest,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// pushEnvelope is the body of a Pub/Sub push request, and the data of a
// messagePublished CloudEvent.
type pushEnvelope struct {
	Message      *pubsubMessage `json:"message"`
	Subscription string         `json:"subscription,omitempty"`
}

// pubsubMessage is a PubsubMessage in its JSON form. Pub/Sub push and Eventarc
// send both the camelCase and the snake_case spellings of the id and time.
type pubsubMessage struct {
	Data             string            `json:"data,omitempty"` // base64
	Attributes       map[string]string `json:"attributes,omitempty"`
	MessageID        string            `json:"messageId,omitempty"`
	MessageIDSnake   string            `json:"message_id,omitempty"`
	PublishTime      string            `json:"publishTime,omitempty"`
	PublishTimeSnake string            `json:"publish_time,omitempty"`
}

// Decode reads one Artifact Registry notification from an HTTP request to
// POST /gar, reading at most maxBytes of body (DefaultMaxBytes if
// maxBytes <= 0). It accepts
//   - a CloudEvent of type [PubSubEventType] in binary content mode (ce-*
//     headers, the body is {"message":{...},"subscription":"..."});
//   - the same CloudEvent in structured mode (Content-Type:
//     application/cloudevents+json, the envelope under "data");
//   - a Pub/Sub push envelope {"message":{...},"subscription":"..."}.
//
// The message id is message.messageId (or message_id, or the CloudEvent id);
// the publish time is message.publishTime (or publish_time, or the
// CloudEvent time), or the zero time if the delivery has none.
//
// Errors wrap [ErrUnreadable] (also [ErrTooLarge] for an oversized body) or
// [ErrRejected]. With ErrRejected, the returned Message still carries ID and
// PublishTime so the caller can dedupe and log; its other fields are empty.
func Decode(r *http.Request, maxBytes int64) (Message, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	body, err := readBody(r, maxBytes)
	if err != nil {
		return Message{}, err
	}
	m := cehttp.NewMessage(r.Header, io.NopCloser(bytes.NewReader(body)))
	switch m.ReadEncoding() {
	case binding.EncodingBinary, binding.EncodingStructured:
		return decodeCloudEvent(r, m)
	case binding.EncodingBatch:
		return Message{}, unreadable("CloudEvents batches are not supported")
	}
	if v := r.Header.Get("Ce-Specversion"); v != "" {
		return Message{}, unreadable(fmt.Sprintf("unsupported CloudEvents specversion %s", logging.Quote(v)))
	}
	return decodeEnvelope(body, "", time.Time{})
}

// readBody reads the whole body, failing with ErrTooLarge past maxBytes. It
// also recognises the error of an http.MaxBytesReader the server may have
// installed itself.
func readBody(r *http.Request, maxBytes int64) ([]byte, error) {
	tooLarge := fmt.Errorf("%w: %w (limit %d bytes)", ErrUnreadable, ErrTooLarge, maxBytes)
	if r.Body == nil || r.Body == http.NoBody {
		return nil, unreadable("empty body")
	}
	if r.ContentLength > maxBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, fmt.Errorf("%w: read body: %w", ErrUnreadable, err)
	}
	if int64(len(body)) > maxBytes {
		return nil, tooLarge
	}
	if len(body) == 0 {
		return nil, unreadable("empty body")
	}
	return body, nil
}

// decodeCloudEvent decodes a binary or structured CloudEvent with the SDK's
// HTTP binding and then the Pub/Sub envelope in its data.
func decodeCloudEvent(r *http.Request, m *cehttp.Message) (Message, error) {
	ev, err := binding.ToEvent(r.Context(), m)
	if err != nil {
		return Message{}, fmt.Errorf("%w: decode CloudEvent: %w", ErrUnreadable, err)
	}
	if err := ev.Validate(); err != nil {
		return Message{}, fmt.Errorf("%w: invalid CloudEvent: %w", ErrUnreadable, err)
	}
	if ev.Type() != PubSubEventType {
		return Message{}, unreadable(fmt.Sprintf("CloudEvent type %s, want %q (is the trigger bound to the gcr Pub/Sub topic?)", logging.Quote(ev.Type()), PubSubEventType))
	}
	if len(ev.Data()) == 0 {
		return Message{}, unreadable("CloudEvent has no data")
	}
	return decodeEnvelope(ev.Data(), ev.ID(), ev.Time())
}

// decodeEnvelope decodes a Pub/Sub push envelope and the GAR notification in
// its message.data. fallbackID and fallbackTime come from the CloudEvent
// around the envelope, if any.
func decodeEnvelope(body []byte, fallbackID string, fallbackTime time.Time) (Message, error) {
	var env pushEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Message{}, fmt.Errorf("%w: Pub/Sub envelope: %w", ErrUnreadable, err)
	}
	pm := env.Message
	if pm == nil {
		return Message{}, unreadable(`Pub/Sub envelope has no "message"`)
	}
	msg := Message{ID: firstNonEmpty(pm.MessageID, pm.MessageIDSnake, fallbackID)}
	if msg.ID == "" {
		return Message{}, unreadable("Pub/Sub message has no messageId")
	}
	if s := firstNonEmpty(pm.PublishTime, pm.PublishTimeSnake); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			// The envelope is fine and names its message: the message is
			// malformed, so it is rejected (acknowledged), not redelivered.
			// (time's error would quote s whole.)
			return msg, fmt.Errorf("%w: Pub/Sub message %s: publishTime %s is not an RFC 3339 time", ErrRejected, logging.Clip(msg.ID), logging.Quote(s))
		}
		msg.PublishTime = t.UTC()
	} else if !fallbackTime.IsZero() {
		msg.PublishTime = fallbackTime.UTC()
	}
	if pm.Data == "" {
		return msg, fmt.Errorf("%w: Pub/Sub message %s has no data", ErrRejected, logging.Clip(msg.ID))
	}
	data, err := base64.StdEncoding.DecodeString(pm.Data)
	if err != nil {
		// Pub/Sub always sends padded standard base64; tolerate a sender
		// that leaves the padding off, nothing else.
		if data, err = base64.RawStdEncoding.DecodeString(pm.Data); err != nil {
			return msg, fmt.Errorf("%w: Pub/Sub message %s: data is not base64: %w", ErrRejected, logging.Clip(msg.ID), err)
		}
	}
	parsed, err := ParseData(data)
	if err != nil {
		return msg, fmt.Errorf("Pub/Sub message %s: %w", logging.Clip(msg.ID), err)
	}
	parsed.ID, parsed.PublishTime = msg.ID, msg.PublishTime
	return parsed, nil
}

// ParseData parses message.data as Artifact Registry publishes it,
// {"action":"INSERT","digest":"HOST/P/R/IMG@sha256:HEX","tag":"HOST/P/R/IMG:TAG"},
// into a Message with Action, Repository, Digest and Tag set (ID and
// PublishTime are left zero). An INSERT needs a digest and may have a tag; a
// DELETE needs a digest or a tag. When both are present they must name the
// same repository. Errors wrap [ErrRejected] and say why.
func ParseData(data []byte) (Message, error) {
	var d garData
	if err := json.Unmarshal(data, &d); err != nil {
		return Message{}, fmt.Errorf("%w: data is not a JSON object: %w", ErrRejected, err)
	}
	var msg Message
	switch d.Action {
	case ActionInsert, ActionDelete:
		msg.Action = d.Action
	case "":
		return Message{}, rejected(`data has no "action"`)
	default:
		return Message{}, rejected(fmt.Sprintf("unknown action %s (want INSERT or DELETE)", logging.Quote(d.Action)))
	}
	if d.Digest == "" && (d.Action == ActionInsert || d.Tag == "") {
		if d.Action == ActionInsert {
			return Message{}, rejected("INSERT without digest")
		}
		return Message{}, rejected("DELETE without digest or tag")
	}
	if d.Digest != "" {
		repo, tag, digest, err := ParseReference(d.Digest)
		if err != nil {
			return Message{}, fmt.Errorf("%w: digest: %w", ErrRejected, err)
		}
		if digest == "" || tag != "" {
			return Message{}, rejected(fmt.Sprintf("digest %s is not REPOSITORY@sha256:HEX", logging.Quote(d.Digest)))
		}
		msg.Repository, msg.Digest = repo, digest
	}
	if d.Tag != "" {
		repo, tag, digest, err := ParseReference(d.Tag)
		if err != nil {
			return Message{}, fmt.Errorf("%w: tag: %w", ErrRejected, err)
		}
		if tag == "" || digest != "" {
			return Message{}, rejected(fmt.Sprintf("tag %s is not REPOSITORY:TAG", logging.Quote(d.Tag)))
		}
		if msg.Repository != "" && msg.Repository != repo {
			return Message{}, rejected(fmt.Sprintf("digest and tag name different repositories: %s and %s", logging.Quote(msg.Repository), logging.Quote(repo)))
		}
		msg.Repository, msg.Tag = repo, tag
	}
	return msg, nil
}

func unreadable(reason string) error { return fmt.Errorf("%w: %s", ErrUnreadable, reason) }

func rejected(reason string) error { return fmt.Errorf("%w: %s", ErrRejected, reason) }

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
