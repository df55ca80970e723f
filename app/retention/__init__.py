"""Retention (docs/api.md §8): finished records older than RETENTION_DAYS are deleted, in small batches."""
