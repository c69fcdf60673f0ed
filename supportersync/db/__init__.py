"""Database access: tables, engine set-up, migrations and dialect-aware upserts."""
