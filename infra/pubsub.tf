# Artifact Registry publishes every push and delete on the topic gcr of its
# project (https://cloud.google.com/artifact-registry/docs/configure-notifications).
# pinroll owns it; set gcr_topic_exists when it is there already, to import it.
resource "google_pubsub_topic" "gcr" {
  name = "gcr"

  depends_on = [google_project_service.apis]
}

import {
  for_each = var.gcr_topic_exists ? toset(["gcr"]) : toset([])
  to       = google_pubsub_topic.gcr
  id       = "projects/${var.project}/topics/gcr"
}

# Where Pub/Sub puts a GAR message OnImagePushed failed to take after
# var.max_delivery_attempts deliveries; the subscription below keeps them for
# a person to read (a topic alone keeps nothing).
resource "google_pubsub_topic" "dead_letter" {
  name = "pinroll-gcr-dead-letter"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "dead_letter" {
  name                       = "pinroll-gcr-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Cloud Run's direct Pub/Sub trigger (https://cloud.google.com/run/docs/triggering/pubsub-push):
# a push subscription to OnImagePushed, authenticated with an OIDC token of
# the invoker account. The endpoint's path names the topic: the Functions
# Framework turns a push envelope into a CloudEvent for a CloudEvent target
# only when its request path holds projects/P/topics/T (funcframework,
# getBackgroundEvent); cmd/function's tests prove it on this path.
resource "google_pubsub_subscription" "gcr_push" {
  name                       = "pinroll-gcr-push"
  topic                      = google_pubsub_topic.gcr.id
  ack_deadline_seconds       = 120
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.target["OnImagePushed"].uri}/projects/${var.project}/topics/${google_pubsub_topic.gcr.name}"

    oidc_token {
      service_account_email = google_service_account.push_invoker.email
      audience              = local.service_urls["OnImagePushed"]
    }
  }

  # A transient failure (5xx, 429) is retried with exponential backoff, then
  # dead-lettered; pinroll answers 2xx to everything else (SPEC §4.1).
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}
