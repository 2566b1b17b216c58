variable "project" {
  description = "The Google Cloud project id pinroll runs in (and whose Artifact Registry publishes on the gcr topic)."
  type        = string
}

variable "region" {
  description = "The region of the Cloud Run services, the Scheduler job and pinroll's image repository."
  type        = string
  default     = "asia-northeast2"
}

variable "firestore_location" {
  description = "The Firestore database location (a region or multi-region); null means var.region."
  type        = string
  default     = null
}

variable "gitops_repo" {
  description = "The GitOps repository pinroll writes, OWNER/NAME on GitHub; the config file's git.repo must name it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.gitops_repo))
    error_message = "gitops_repo must be OWNER/NAME, e.g. my-org/cloud-provisioning."
  }
}

variable "config_file" {
  description = "Path of pinroll's YAML config (SPEC §3: no secrets in it). It becomes a Secret Manager secret mounted as a file, so a change needs terraform apply, not an image build."
  type        = string
  default     = "pinroll.yaml"
}

variable "image" {
  description = "The pinroll container image the services run, e.g. REGION-docker.pkg.dev/PROJECT/pinroll/pinroll:TAG. Later deploys (cloudbuild.yaml) move the services to newer images without Terraform."
  type        = string
}

variable "image_repository" {
  description = "The Artifact Registry Docker repository (in var.region) created for pinroll's own image."
  type        = string
  default     = "pinroll"
}

variable "squash_schedule" {
  description = "When Cloud Scheduler calls Squash (cron syntax, in var.time_zone): weekly by default."
  type        = string
  default     = "0 3 * * 1"
}

variable "time_zone" {
  description = "The time zone of var.squash_schedule (tz database name)."
  type        = string
  default     = "Etc/UTC"
}

variable "github_app" {
  description = "Authenticate as a GitHub App ({app_id, installation_id}; its private key goes into the secret pinroll-github-app-key) instead of with a token (null: the secret pinroll-github-token)."
  type = object({
    app_id          = string
    installation_id = string
  })
  default = null
}

variable "operators" {
  description = "IAM members allowed to invoke Ops and Squash by hand (pinroll status/deploy/squash), e.g. [\"user:alice@example.com\", \"serviceAccount:ci@PROJECT.iam.gserviceaccount.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.operators : can(regex("^(user|serviceAccount|group):", m))])
    error_message = "Each operator is an IAM member: user:EMAIL, serviceAccount:EMAIL or group:EMAIL."
  }
}

variable "events_topic" {
  description = "The topic of the config's events.topic (short name, in var.project), if pin events are on; empty: none."
  type        = string
  default     = ""
}

variable "gcr_topic_exists" {
  description = "Set true when the project already has the topic gcr: Terraform then imports it instead of creating it."
  type        = bool
  default     = false
}

variable "firestore_database_exists" {
  description = "Set true when the project already has the Firestore database (default): Terraform then imports it."
  type        = bool
  default     = false
}

variable "max_instances" {
  description = "The most instances each Cloud Run service may scale to."
  type        = number
  default     = 3
}

variable "max_delivery_attempts" {
  description = "Deliveries of a GAR message before Pub/Sub moves it to the dead-letter topic (5 to 100)."
  type        = number
  default     = 10
}
