"""Code both programs use: config schema, ids, SQLite access, task ownership, logging."""
