# The APIs pinroll uses. Enable serviceusage and cloudresourcemanager by hand
# first (README, "Deploy to Google Cloud"): Terraform needs them to enable these.
resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
  ])

  service            = each.value
  disable_on_destroy = false
}

# pinroll's own image. Its pushes reach pinroll too (the gcr topic is
# project-wide) and are ignored: no config image names this repository.
resource "google_artifact_registry_repository" "pinroll" {
  repository_id = var.image_repository
  location      = var.region
  format        = "DOCKER"
  description   = "pinroll's container image"

  depends_on = [google_project_service.apis]
}
