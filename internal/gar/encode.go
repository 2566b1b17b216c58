package gar

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Topic is the Pub/Sub topic Artifact Registry publishes on, in the project
// of the registry.
const Topic = "gcr"

// subscriptionID names the subscription in the envelopes built here. Eventarc
// and push subscriptions have names of their own; nothing reads this one.
const subscriptionID = "pinroll-gar"

// EncodeData returns message.data as Artifact Registry publishes it for msg:
// {"action":…,"digest":"REPO@sha256:…","tag":"REPO:TAG"}, leaving out an
// empty digest or tag. It fails if the result would not pass [ParseData].
func EncodeData(msg Message) ([]byte, error) {
	d := garData{Action: msg.Action}
	if msg.Digest != "" {
		d.Digest = msg.Repository + "@" + msg.Digest
	}
	if msg.Tag != "" {
		d.Tag = msg.Repository + ":" + msg.Tag
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode GAR data: %w", err)
	}
	if _, err := ParseData(b); err != nil {
		return nil, fmt.Errorf("encode GAR data: %w", err)
	}
	return b, nil
}

// NewEvent returns the CloudEvent Eventarc delivers for msg: type
// [PubSubEventType], source //pubsub.googleapis.com/projects/P/topics/gcr, id
// msg.ID, time msg.PublishTime (left out if zero) and, as application/json
// data, the push envelope
// {"message":{"data":"<base64>","messageId":…,"publishTime":…},"subscription":…}
// with message_id and publish_time too, as Pub/Sub sends them. That data
// alone is the body Pub/Sub POSTs to a push endpoint. Send the event in binary
// mode with
// cehttp.NewHTTPRequestFromEvent, or in structured mode with
// cehttp.WriteRequest and binding.WithForceStructured.
func NewEvent(msg Message) (event.Event, error) {
	env, err := newEnvelope(msg)
	if err != nil {
		return event.Event{}, err
	}
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(msg.ID)
	e.SetType(PubSubEventType)
	e.SetSource("//pubsub.googleapis.com/projects/" + projectOf(msg.Repository) + "/topics/" + Topic)
	if !msg.PublishTime.IsZero() {
		e.SetTime(msg.PublishTime)
	}
	// A struct, not []byte: the SDK marks []byte data as base64, which
	// structured mode would send as data_base64 where Eventarc sends a JSON
	// object.
	if err := e.SetData(event.ApplicationJSON, env); err != nil {
		return event.Event{}, fmt.Errorf("new GAR event: %w", err)
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("new GAR event: %w", err)
	}
	return e, nil
}

func newEnvelope(msg Message) (pushEnvelope, error) {
	if msg.ID == "" {
		return pushEnvelope{}, errors.New("encode Pub/Sub message: no message id")
	}
	data, err := EncodeData(msg)
	if err != nil {
		return pushEnvelope{}, err
	}
	return newEnvelopeData(msg.ID, msg.PublishTime, projectOf(msg.Repository), data), nil
}

// newEnvelopeData wraps raw message data, valid or not, in a push envelope.
func newEnvelopeData(id string, publishTime time.Time, project string, data []byte) pushEnvelope {
	pm := &pubsubMessage{
		Data:           base64.StdEncoding.EncodeToString(data),
		MessageID:      id,
		MessageIDSnake: id,
	}
	if !publishTime.IsZero() {
		pm.PublishTime = publishTime.UTC().Format(time.RFC3339Nano)
		pm.PublishTimeSnake = pm.PublishTime
	}
	return pushEnvelope{Message: pm, Subscription: "projects/" + project + "/subscriptions/" + subscriptionID}
}

// projectOf returns the project of an Artifact Registry docker repository
// (HOST/PROJECT/REPO/IMAGE; a domain-scoped project example.com:p appears as
// example.com/p), or the first path component of any other repository.
func projectOf(repository string) string {
	parts := strings.Split(repository, "/")
	if len(parts) < 2 {
		return "-"
	}
	if len(parts) >= 5 && strings.Contains(parts[1], ".") {
		return parts[1] + ":" + parts[2]
	}
	return parts[1]
}
