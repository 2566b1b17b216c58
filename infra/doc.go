// Package infra holds pinroll's deployment on Google Cloud as Terraform
// (SPEC §8): Cloud Run services per function target, the Pub/Sub push
// subscription with its dead-letter topic, the weekly Scheduler job,
// Firestore, Secret Manager and least-privilege IAM. It has no Go code; its
// tests parse the Terraform, the Dockerfile and cloudbuild.yaml and check
// their security properties.
package infra
