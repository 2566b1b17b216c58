// Package gar reads Google Artifact Registry notifications (SPEC §4.1).
//
// It decodes the notifications Artifact Registry publishes on the Pub/Sub
// topic gcr, in the three encodings they reach pinroll (a CloudEvent
// google.cloud.pubsub.topic.v1.messagePublished in binary or structured
// content mode, as Eventarc and Cloud Run functions deliver it, and a Pub/Sub
// push envelope), builds such notifications for the CLI and tests, and parses
// the image references they carry. Tag lookups through the Artifact Registry
// API are in the registry subpackage.
//
// References:
//   - https://cloud.google.com/artifact-registry/docs/configure-notifications
//   - https://cloud.google.com/pubsub/docs/push#receive_push
//   - https://cloud.google.com/eventarc/docs/cloudevents (Pub/Sub messagePublished)
package gar
