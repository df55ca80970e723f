"""App Store Server Notifications V2 (docs/api.md §6): receive, store, apply."""
