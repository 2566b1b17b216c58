output "webhook_url" {
  description = "The GitHub webhook's payload URL (content type application/json, the secret pinroll-webhook-secret, the Releases event)."
  value       = google_cloud_run_v2_service.target["OnGitHubWebhook"].uri
}

output "service_urls" {
  description = "Each target's URL. Ops and Squash check ID tokens for these URLs: use them as pinroll's --server."
  value       = local.service_urls
}

output "push_subscription" {
  description = "The push subscription delivering GAR messages to OnImagePushed."
  value       = google_pubsub_subscription.gcr_push.id
}

output "dead_letter_subscription" {
  description = "Where GAR messages that failed every delivery wait to be read."
  value       = google_pubsub_subscription.dead_letter.id
}

output "image_repository" {
  description = "Where cloudbuild.yaml pushes pinroll's image."
  value       = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.pinroll.repository_id}"
}

output "deployer_service_account" {
  description = "The account to run cloudbuild.yaml as (gcloud builds submit --service-account)."
  value       = google_service_account.deployer.id
}

output "secrets_to_fill" {
  description = "The secrets to give a value with gcloud secrets versions add."
  value       = [google_secret_manager_secret.github.secret_id, google_secret_manager_secret.webhook.secret_id]
}
