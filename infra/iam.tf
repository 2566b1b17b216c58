# Service accounts and the roles they hold, least privilege: every role says
# why it is needed, and is granted on the narrowest resource that works. No
# primitive role (owner, editor) anywhere.

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# --- runtime: one account per service, so each holds only what it uses ----

resource "google_service_account" "runtime" {
  for_each = local.targets

  account_id   = each.value.service
  display_name = "pinroll ${each.key} (Cloud Run runtime)"

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "firestore" {
  for_each = local.targets

  project = var.project
  # Read and write the ledger's documents (Firestore has no per-database role).
  role   = "roles/datastore.user"
  member = google_service_account.runtime[each.key].member
}

resource "google_project_iam_member" "registry_reader" {
  for_each = { for k, t in local.targets : k => t if t.registry }

  project = var.project
  # Resolve a release tag to its digest when the ledger has not seen it yet
  # (the app images' repositories may be any in the project).
  role   = "roles/artifactregistry.reader"
  member = google_service_account.runtime[each.key].member
}

resource "google_pubsub_topic_iam_member" "events_publisher" {
  for_each = var.events_topic == "" ? {} : { for k, t in local.targets : k => t if t.pins }

  project = var.project
  topic   = var.events_topic
  # Publish one pin event per pin on the config's events.topic.
  role   = "roles/pubsub.publisher"
  member = google_service_account.runtime[each.key].member
}

resource "google_secret_manager_secret_iam_member" "config" {
  for_each = local.targets

  secret_id = google_secret_manager_secret.config.id
  # Read the config file mounted into every service.
  role   = "roles/secretmanager.secretAccessor"
  member = google_service_account.runtime[each.key].member
}

resource "google_secret_manager_secret_iam_member" "github" {
  for_each = local.targets

  secret_id = google_secret_manager_secret.github.id
  # Every target writes the GitOps repository on GitHub.
  role   = "roles/secretmanager.secretAccessor"
  member = google_service_account.runtime[each.key].member
}

resource "google_secret_manager_secret_iam_member" "webhook" {
  secret_id = google_secret_manager_secret.webhook.id
  # Only the webhook target verifies GitHub's HMAC signature.
  role   = "roles/secretmanager.secretAccessor"
  member = google_service_account.runtime["OnGitHubWebhook"].member
}

# --- invokers ----------------------------------------------------------------

# The identity of the push subscription's OIDC tokens.
resource "google_service_account" "push_invoker" {
  account_id   = "pinroll-pubsub-push"
  display_name = "pinroll Pub/Sub push to OnImagePushed"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  name     = google_cloud_run_v2_service.target["OnImagePushed"].name
  location = var.region
  # Deliver GAR messages to OnImagePushed, and nothing else.
  role   = "roles/run.invoker"
  member = google_service_account.push_invoker.member
}

resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.push_invoker.name
  # Pub/Sub mints the push OIDC tokens as this account (needed in projects
  # older than April 2021; harmless after).
  role   = "roles/iam.serviceAccountTokenCreator"
  member = local.pubsub_agent

  # The Pub/Sub service agent exists once the Pub/Sub API is on.
  depends_on = [google_project_service.apis]
}

# The identity of the weekly squash's OIDC tokens.
resource "google_service_account" "scheduler" {
  account_id   = "pinroll-scheduler"
  display_name = "pinroll Cloud Scheduler to Squash"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invoker" {
  name     = google_cloud_run_v2_service.target["Squash"].name
  location = var.region
  # Call Squash weekly, and nothing else.
  role   = "roles/run.invoker"
  member = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_service_iam_member" "operators" {
  for_each = {
    for pair in setproduct(["Ops", "Squash"], var.operators) : "${pair[0]} ${pair[1]}" => pair
  }

  name     = google_cloud_run_v2_service.target[each.value[0]].name
  location = var.region
  # People and tools that run pinroll status/deploy/resume/squash by hand.
  role   = "roles/run.invoker"
  member = each.value[1]
}

# The one public endpoint: GitHub cannot send an ID token, so the webhook
# target authenticates each delivery by its HMAC signature instead (SPEC §4.2).
resource "google_cloud_run_v2_service_iam_member" "webhook_public" {
  name     = google_cloud_run_v2_service.target["OnGitHubWebhook"].name
  location = var.region
  # GitHub's webhook deliveries carry no Google credentials.
  role   = "roles/run.invoker"
  member = "allUsers"
}

# --- dead letters: the Pub/Sub service agent moves failed messages ----------

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic = google_pubsub_topic.dead_letter.id
  # Forward a message past its delivery attempts to the dead-letter topic.
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  subscription = google_pubsub_subscription.gcr_push.id
  # Acknowledge the forwarded message on the source subscription.
  role   = "roles/pubsub.subscriber"
  member = local.pubsub_agent
}

# --- the deployer: what cloudbuild.yaml runs as -------------------------------

resource "google_service_account" "deployer" {
  account_id   = "pinroll-deployer"
  display_name = "pinroll Cloud Build deployer"

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "deployer_writer" {
  repository = google_artifact_registry_repository.pinroll.name
  location   = var.region
  # Push the image it builds, to pinroll's repository only.
  role   = "roles/artifactregistry.writer"
  member = google_service_account.deployer.member
}

resource "google_cloud_run_v2_service_iam_member" "deployer_developer" {
  for_each = local.targets

  name     = google_cloud_run_v2_service.target[each.key].name
  location = var.region
  # Roll each service to the new image (a new revision), nothing more.
  role   = "roles/run.developer"
  member = google_service_account.deployer.member
}

resource "google_service_account_iam_member" "deployer_acts_as_runtime" {
  for_each = local.targets

  service_account_id = google_service_account.runtime[each.key].name
  # A new revision runs as the service's runtime account.
  role   = "roles/iam.serviceAccountUser"
  member = google_service_account.deployer.member
}

resource "google_project_iam_member" "deployer_logs" {
  project = var.project
  # Write the build's logs (cloudbuild.yaml logs to Cloud Logging only).
  role   = "roles/logging.logWriter"
  member = google_service_account.deployer.member
}
