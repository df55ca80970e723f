"""`make bench`: storekit-sync under load, beside a minimal FastAPI + asyncpg baseline.

See bench/README.md for what is measured and how.
"""
