# One Cloud Run service per function target (SPEC §4.5), all running the same
# image; FUNCTION_TARGET picks the target. Only OnGitHubWebhook is public
# (iam.tf grants allUsers on it alone; GitHub signs each delivery with the
# webhook secret and the target checks that HMAC first). The others answer
# only callers iam.tf grants roles/run.invoker.
locals {
  targets = {
    OnImagePushed = {
      service  = "pinroll-on-image-pushed"
      timeout  = "60s"
      registry = false # completes pending promotions from the GAR message itself
      pins     = true
    }
    OnGitHubWebhook = {
      service  = "pinroll-github-webhook"
      timeout  = "60s"
      registry = true # resolves a release tag to its digest in Artifact Registry
      pins     = true
    }
    Squash = {
      service  = "pinroll-squash"
      timeout  = "660s" # /squash has its own 10-minute deadline (GitHub writes are paced)
      registry = false
      pins     = false
    }
    Ops = {
      service  = "pinroll-ops"
      timeout  = "60s"
      registry = true # deploy --tag resolves the tag in Artifact Registry
      pins     = true
    }
  }

  # The deterministic URL of each service (https://cloud.google.com/run/docs/triggering/https-request#deterministic):
  # known before the service exists, so a service can be told its own URL as
  # the audience of the ID tokens it accepts.
  service_urls = {
    for k, t in local.targets : k => "https://${t.service}-${data.google_project.this.number}.${var.region}.run.app"
  }

  # Who may call each IAM-protected target, as the app checks it again
  # (PINROLL_OIDC_INVOKERS: service-account or user emails of the ID tokens).
  operator_emails = [for m in var.operators : split(":", m)[1] if !startswith(m, "group:")]
  oidc_invokers = {
    Squash = concat([google_service_account.scheduler.email], local.operator_emails)
    Ops    = local.operator_emails
  }

  github_env = var.github_app == null ? {} : {
    PINROLL_GITHUB_APP_ID               = var.github_app.app_id
    PINROLL_GITHUB_APP_INSTALLATION_ID  = var.github_app.installation_id
    PINROLL_GITHUB_APP_PRIVATE_KEY_FILE = "/etc/pinroll-github/key.pem"
  }

  # Plain environment per target (no secret values here).
  plain_env = {
    for k, t in local.targets : k => merge(
      local.github_env,
      contains(keys(local.oidc_invokers), k) ? {
        PINROLL_OIDC_AUDIENCE = local.service_urls[k]
        PINROLL_OIDC_INVOKERS = join(",", local.oidc_invokers[k])
      } : {},
    )
  }

  # Environment variables read from Secret Manager at instance start.
  secret_env = {
    for k, t in local.targets : k => merge(
      var.github_app == null ? { PINROLL_GITHUB_TOKEN = google_secret_manager_secret.github.secret_id } : {},
      k == "OnGitHubWebhook" ? { PINROLL_WEBHOOK_SECRET = google_secret_manager_secret.webhook.secret_id } : {},
    )
  }
}

resource "google_cloud_run_v2_service" "target" {
  for_each = local.targets

  name                = each.value.service
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false

  template {
    service_account = google_service_account.runtime[each.key].email
    timeout         = each.value.timeout

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    # The config file: a secret mounted as a file, read when an instance
    # starts, so a new version reaches new instances without a rebuild.
    volumes {
      name = "config"
      secret {
        secret = google_secret_manager_secret.config.secret_id
        items {
          version = "latest"
          path    = "pinroll.yaml"
        }
      }
    }

    dynamic "volumes" {
      for_each = var.github_app == null ? [] : [google_secret_manager_secret.github.secret_id]
      content {
        name = "github-app-key"
        secret {
          secret = volumes.value
          items {
            version = "latest"
            path    = "key.pem"
          }
        }
      }
    }

    containers {
      image = var.image

      env {
        name  = "FUNCTION_TARGET"
        value = each.key
      }
      env {
        name  = "PINROLL_CONFIG"
        value = "/etc/pinroll/pinroll.yaml"
      }

      dynamic "env" {
        for_each = local.plain_env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secret_env[each.key]
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = true
      }

      volume_mounts {
        name       = "config"
        mount_path = "/etc/pinroll"
      }

      dynamic "volume_mounts" {
        for_each = var.github_app == null ? [] : ["github-app-key"]
        content {
          name       = volume_mounts.value
          mount_path = "/etc/pinroll-github"
        }
      }
    }
  }

  lifecycle {
    # cloudbuild.yaml moves the services to each new image; Terraform sets the
    # first one and leaves the rest to it.
    ignore_changes = [template[0].containers[0].image, client, client_version]
  }

  # A revision starts only once its service account may read its secrets.
  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.config,
    google_secret_manager_secret_iam_member.github,
    google_secret_manager_secret_iam_member.webhook,
  ]
}
