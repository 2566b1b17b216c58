# Terraform and the Google provider (https://registry.terraform.io/providers/hashicorp/google).
# Terraform 1.7 or newer: the conditional import blocks (pubsub.tf, firestore.tf) use for_each.
terraform {
  required_version = ">= 1.7"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 8.0"
    }
  }

  # State holds no secret value (the secrets are created empty, see secrets.tf),
  # but keep it in a bucket once more than one person applies, e.g.:
  # backend "gcs" { bucket = "PROJECT-tfstate", prefix = "pinroll" }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}
