# pinroll's ledger (SPEC §5): the (default) Firestore database in Native mode;
# the config's ledger is firestore://PROJECT. Set firestore_database_exists
# when the project has one already, to import it.
resource "google_firestore_database" "default" {
  name                    = "(default)"
  location_id             = coalesce(var.firestore_location, var.region)
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  # terraform destroy leaves the ledger (history, holds) in place.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.apis]
}

import {
  for_each = var.firestore_database_exists ? toset(["(default)"]) : toset([])
  to       = google_firestore_database.default
  id       = "projects/${var.project}/databases/(default)"
}

# A TTL policy on deliveries.expireAt keeps the dedupe records from growing
# without bound (https://firebase.google.com/docs/firestore/ttl). Firestore
# deletes a document once the time in its TTL field has passed (typically
# within a day), so the ledger writes the expiry there: handled time + 7 days,
# Pub/Sub's default retention. (SPEC §8 says deliveries.at, the handled time:
# that would forget a delivery within a day of handling it.)
resource "google_firestore_field" "deliveries_ttl" {
  project    = var.project
  database   = google_firestore_database.default.name
  collection = "deliveries"
  field      = "expireAt"

  ttl_config {}

  # No query reads deliveries by "expireAt": an unindexed, ever-increasing
  # timestamp avoids the write hotspot an index on it would make.
  index_config {}
}
