# Secret Manager secrets. The credentials are created EMPTY: their values
# never pass through Terraform (state, plan or tfvars). Fill them with
#   gcloud secrets versions add SECRET --data-file=-
# (README, "Deploy to Google Cloud"). The services read version "latest".

# The GitHub credential: a token (PINROLL_GITHUB_TOKEN), or a GitHub App's
# private key (PEM, mounted as a file) when var.github_app is set.
resource "google_secret_manager_secret" "github" {
  secret_id = var.github_app == null ? "pinroll-github-token" : "pinroll-github-app-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# The GitHub webhook secret (PINROLL_WEBHOOK_SECRET), OnGitHubWebhook only.
resource "google_secret_manager_secret" "webhook" {
  secret_id = "pinroll-webhook-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# The config file, which holds no secret (SPEC §3), mounted as a file into
# every service. Terraform writes it from var.config_file; a change is a new
# version that new instances read: no image rebuild.
resource "google_secret_manager_secret" "config" {
  secret_id = "pinroll-config"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

locals {
  config = yamldecode(file(var.config_file))
}

resource "google_secret_manager_secret_version" "config" {
  secret      = google_secret_manager_secret.config.id
  secret_data = file(var.config_file)

  lifecycle {
    # A config change adds the new version before the old one goes, so a
    # starting instance always finds one; old versions do not pile up.
    create_before_destroy = true

    precondition {
      condition     = endswith(trimsuffix(try(local.config.git.repo, ""), ".git"), "github.com/${var.gitops_repo}")
      error_message = "The config's git.repo must be https://github.com/${var.gitops_repo}."
    }
    precondition {
      condition     = startswith(try(local.config.ledger, ""), "firestore://${var.project}")
      error_message = "The config's ledger must be firestore://${var.project} in the cloud."
    }
  }
}
