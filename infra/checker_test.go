package infra

import (
	"maps"
	"os"
	"strings"
	"testing"
)

// A small module that passes every check; the cases below break it one way
// each, so that each check is seen to fail.
const (
	goodServices = `
locals {
  pubsub_agent = "serviceAccount:service-1@gcp-sa-pubsub.iam.gserviceaccount.com"
  targets = {
    OnImagePushed   = {}
    OnGitHubWebhook = {}
  }
}
resource "google_cloud_run_v2_service" "target" {
  for_each = local.targets
  template {
    scaling {
      min_instance_count = 0
    }
    volumes {
      name = "config"
      secret {
        secret = google_secret_manager_secret.config.secret_id
      }
    }
    containers {
      env {
        name  = "FUNCTION_TARGET"
        value = each.key
      }
      env {
        name  = "PINROLL_CONFIG"
        value = "/etc/pinroll/pinroll.yaml"
      }
    }
  }
}
`
	goodIAM = `
resource "google_cloud_run_v2_service_iam_member" "webhook_public" {
  name = google_cloud_run_v2_service.target["OnGitHubWebhook"].name
  # GitHub carries no Google credentials.
  role   = "roles/run.invoker"
  member = "allUsers"
}
resource "google_pubsub_topic_iam_member" "dl" {
  topic = google_pubsub_topic.dead_letter.id
  # dead letters
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}
resource "google_pubsub_subscription_iam_member" "dl" {
  subscription = google_pubsub_subscription.push.id
  role         = "roles/pubsub.subscriber" # acknowledge forwarded messages
  member       = local.pubsub_agent
}
`
	goodPubSub = `
resource "google_pubsub_topic" "dead_letter" {
  name = "dl"
}
resource "google_pubsub_subscription" "push" {
  push_config {
    push_endpoint = "${google_cloud_run_v2_service.target["OnImagePushed"].uri}/projects/${var.project}/topics/gcr"
    oidc_token {
      service_account_email = google_service_account.push.email
    }
  }
  retry_policy {
    minimum_backoff = "10s"
  }
  dead_letter_policy {
    dead_letter_topic = google_pubsub_topic.dead_letter.id
  }
}
resource "google_cloud_scheduler_job" "squash" {
  http_target {
    uri = "https://example.invalid/squash"
    oidc_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
}
`
	goodSecrets = `
resource "google_secret_manager_secret" "config" {
  secret_id = "pinroll-config"
}
resource "google_secret_manager_secret_version" "config" {
  secret      = google_secret_manager_secret.config.id
  secret_data = file(var.config_file)
}
`
)

func goodFiles() map[string]string {
	return map[string]string{"services.tf": goodServices, "iam.tf": goodIAM, "pubsub.tf": goodPubSub, "secrets.tf": goodSecrets}
}

// TestChecksFail breaks the good module one way per case and expects the
// named check to say so.
func TestChecksFail(t *testing.T) {
	t.Parallel()
	services := func(m *module) []string { _, p := checkServices(m); return p }
	cases := []struct {
		name  string
		edit  func(files map[string]string) // change the good module
		check func(*module) []string
		want  string // in one problem; "" means no problem at all
	}{
		{name: "good module: public", check: checkPublic},
		{name: "good module: oidc", check: checkOIDC},
		{name: "good module: dead letter", check: checkDeadLetter},
		{name: "good module: secrets", check: checkSecrets},
		{name: "good module: roles", check: checkRoles},
		{name: "good module: services", check: services},
		{
			name:  "another service public",
			edit:  replace("iam.tf", `target["OnGitHubWebhook"]`, `target["OnImagePushed"]`),
			check: checkPublic, want: "other than OnGitHubWebhook public",
		},
		{
			name: "allUsers hidden in a local",
			edit: appendTo("iam.tf", `
locals {
  everyone = "allUsers"
}`),
			check: checkPublic, want: "outside the webhook's invoker grant",
		},
		{
			name:  "allAuthenticatedUsers on the webhook is still one grant too many",
			edit:  appendTo("iam.tf", `resource "google_cloud_run_v2_service_iam_member" "x" { member = "allAuthenticatedUsers" }`),
			check: checkPublic, want: "public",
		},
		{
			name:  "invoker IAM switched off",
			edit:  replace("services.tf", `for_each = local.targets`, "for_each = local.targets\n  invoker_iam_disabled = true"),
			check: checkPublic, want: "disables Cloud Run's invoker IAM check",
		},
		{
			name:  "webhook not public",
			edit:  replace("iam.tf", `member = "allUsers"`, `member = "user:a@example.com"`),
			check: checkPublic, want: "exactly one public invoker grant",
		},
		{
			name:  "push without OIDC",
			edit:  replace("pubsub.tf", "oidc_token {\n      service_account_email = google_service_account.push.email\n    }", ""),
			check: checkOIDC, want: "pushes without an OIDC token",
		},
		{
			name:  "push endpoint without the topic path",
			edit:  replace("pubsub.tf", `/projects/${var.project}/topics/gcr`, ``),
			check: checkOIDC, want: "lacks the /projects/P/topics/T path",
		},
		{
			name:  "scheduler without OIDC",
			edit:  replace("pubsub.tf", "service_account_email = google_service_account.scheduler.email", ""),
			check: checkOIDC, want: "calls its target without an OIDC token",
		},
		{
			name:  "no dead-letter policy",
			edit:  replace("pubsub.tf", "dead_letter_policy {\n    dead_letter_topic = google_pubsub_topic.dead_letter.id\n  }", ""),
			check: checkDeadLetter, want: "has no dead_letter_policy",
		},
		{
			name:  "no retry backoff",
			edit:  replace("pubsub.tf", "retry_policy {\n    minimum_backoff = \"10s\"\n  }", ""),
			check: checkDeadLetter, want: "has no retry_policy",
		},
		{
			name:  "service agent may not publish dead letters",
			edit:  replace("iam.tf", `"roles/pubsub.publisher"`, `"roles/pubsub.viewer"`),
			check: checkDeadLetter, want: "may not publish to google_pubsub_topic.dead_letter",
		},
		{
			name:  "dead letters published by someone else",
			edit:  replace("iam.tf", "role   = \"roles/pubsub.publisher\"\n  member = local.pubsub_agent", "role   = \"roles/pubsub.publisher\"\n  member = \"user:a@example.com\""),
			check: checkDeadLetter, want: "may not publish",
		},
		{
			name:  "service agent may not subscribe",
			edit:  replace("iam.tf", "subscription = google_pubsub_subscription.push.id", "subscription = google_pubsub_subscription.other.id"),
			check: checkDeadLetter, want: "may not subscribe",
		},
		{
			name:  "a credential written by Terraform",
			edit:  appendTo("secrets.tf", `resource "google_secret_manager_secret_version" "token" { secret = google_secret_manager_secret.github.id }`),
			check: checkSecrets, want: "writes a secret other than the config",
		},
		{
			name:  "config from a literal",
			edit:  replace("secrets.tf", "file(var.config_file)", `"git: {}"`),
			check: checkSecrets, want: "must be file(var.config_file)",
		},
		{
			name:  "a private key in a file",
			edit:  appendTo("secrets.tf", "# -----BEGIN "+"RSA PRIVATE KEY-----\n"),
			check: checkSecrets, want: "shaped like a secret",
		},
		{
			name: "a GitHub token in tfvars",
			edit: func(f map[string]string) {
				// Built here so that no token-shaped string sits in the repository.
				f["terraform.tfvars"] = "note = \"ghp_" + strings.Repeat("x", 36) + "\"\n"
			},
			check: checkSecrets, want: "shaped like a secret",
		},
		{
			name:  "a secret-named attribute with a value",
			edit:  func(f map[string]string) { f["terraform.tfvars"] = "webhook_secret = \"hunter2\"\n" },
			check: checkSecrets, want: "webhook_secret is a literal value",
		},
		{
			name:  "a secret-named variable with a default",
			edit:  appendTo("secrets.tf", "variable \"github_token\" {\n  default = \"x\"\n}\n"),
			check: checkSecrets, want: "variable github_token has a default value",
		},
		{
			name:  "a token in a plain env block",
			edit:  replace("services.tf", "    containers {\n", "    containers {\n      env {\n        name  = \"PINROLL_GITHUB_TOKEN\"\n        value = var.token\n      }\n"),
			check: checkSecrets, want: "env PINROLL_GITHUB_TOKEN is a plain value",
		},
		{
			name:  "a webhook secret in an env map, not from Secret Manager",
			edit:  appendTo("services.tf", "locals {\n  env = { PINROLL_WEBHOOK_SECRET = var.webhook }\n}"),
			check: checkSecrets, want: "PINROLL_WEBHOOK_SECRET does not come from a Secret Manager secret",
		},
		{
			name:  "roles/editor",
			edit:  replace("iam.tf", `"roles/run.invoker"`, `"roles/editor"`),
			check: checkRoles, want: "primitive role roles/editor",
		},
		{
			name:  "roles/owner",
			edit:  replace("iam.tf", `"roles/pubsub.subscriber"`, `"roles/owner"`),
			check: checkRoles, want: "primitive role roles/owner",
		},
		{
			name:  "a role without a why",
			edit:  replace("iam.tf", "  # dead letters\n", ""),
			check: checkRoles, want: "role without a comment",
		},
		{
			name:  "always-on instance",
			edit:  replace("services.tf", "min_instance_count = 0", "min_instance_count = 1"),
			check: services, want: "min_instance_count must be 0",
		},
		{
			name:  "config baked in, not a secret volume",
			edit:  replace("services.tf", "google_secret_manager_secret.config.secret_id", `"other"`),
			check: services, want: "does not mount the config secret",
		},
		{
			name:  "no FUNCTION_TARGET",
			edit:  replace("services.tf", `"FUNCTION_TARGET"`, `"TARGET"`),
			check: services, want: "does not set FUNCTION_TARGET",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			files := goodFiles()
			if c.edit != nil {
				c.edit(files)
				if maps.Equal(files, goodFiles()) {
					t.Fatal("the edit changed nothing: fix the case")
				}
			}
			m, err := parseModule(files)
			if err != nil {
				t.Fatal(err)
			}
			problems := c.check(m)
			if c.want == "" {
				for _, p := range problems {
					t.Errorf("unexpected problem: %s", p)
				}
				return
			}
			for _, p := range problems {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", c.want, problems)
		})
	}
}

// TestFunctionTargetsFromGo: the targets are read from the Go source, so a
// renamed or missing registration is seen.
func TestFunctionTargetsFromGo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `package function

import "github.com/GoogleCloudPlatform/functions-framework-go/functions"

func init() {
	functions.CloudEvent("OnImagePushed", nil)
	functions.HTTP("OnGitHubWebhook", nil)
	other.HTTP("NotATarget", nil)
}
`
	if err := os.WriteFile(dir+"/f.go", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := registeredTargets(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"OnImagePushed": "CloudEvent", "OnGitHubWebhook": "HTTP"}
	if len(got) != len(want) || got["OnImagePushed"] != "CloudEvent" || got["OnGitHubWebhook"] != "HTTP" {
		t.Errorf("registeredTargets = %v, want %v", got, want)
	}
	m, err := parseModule(goodFiles())
	if err != nil {
		t.Fatal(err)
	}
	served, problems := checkServices(m)
	if len(problems) > 0 || strings.Join(served, ",") != "OnGitHubWebhook,OnImagePushed" {
		t.Errorf("served = %v (problems %v), want the keys of local.targets", served, problems)
	}
	if _, err := registeredTargets(t.TempDir()); err == nil {
		t.Error("registeredTargets of an empty directory: want an error")
	}
}

func replace(file, old, new string) func(map[string]string) {
	return func(f map[string]string) { f[file] = strings.Replace(f[file], old, new, 1) }
}

func appendTo(file, s string) func(map[string]string) {
	return func(f map[string]string) { f[file] += "\n" + s + "\n" }
}
