# The weekly squash (SPEC §6.3): Cloud Scheduler POSTs to Squash with an OIDC
# token of the scheduler account, the only account (with var.operators) that
# may invoke it. An empty body squashes every branch; the reports go to the
# Squash service's logs.
resource "google_cloud_scheduler_job" "squash" {
  name             = "pinroll-weekly-squash"
  description      = "Fold the week's pinroll commits (POST /squash)"
  region           = var.region
  schedule         = var.squash_schedule
  time_zone        = var.time_zone
  attempt_deadline = "660s" # past /squash's 10-minute deadline, so the report comes back

  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
  }

  http_target {
    http_method = "POST"
    uri         = "${local.service_urls["Squash"]}/squash"
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.service_urls["Squash"]
    }
  }

  depends_on = [
    google_project_service.apis,
    google_cloud_run_v2_service_iam_member.scheduler_invoker,
  ]
}
