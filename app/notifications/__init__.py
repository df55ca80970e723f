"""App Store Server Notifications V2 (SPEC §6): receive, store, apply."""
