"""SQL of the stored executions, shared by both backends (written with ``?``; ``payments_sql.numbered`` makes
``$n``; TRIM takes each backend's placeholders) and the one table text both migrations create."""

from __future__ import annotations

TABLE = [
    """CREATE TABLE executions (
        execution_id TEXT PRIMARY KEY,
        function_id TEXT NOT NULL,
        reader TEXT NOT NULL,                    -- who made it and alone may read it
        body TEXT NOT NULL,                      -- the execution object (JSON), no credential in it
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX executions_by_reader ON executions (reader, created_at_ms, execution_id)",
    "CREATE INDEX executions_expiry ON executions (expires_at_ms)",
]
INSERT = ("INSERT INTO executions (execution_id, function_id, reader, body, created_at_ms, expires_at_ms)"
          " VALUES (?, ?, ?, ?, ?, ?)")
# The reader's executions older than the one at ``offset`` of its newest first (each backend's placeholders).
TRIM = ("DELETE FROM executions WHERE reader = {reader} AND (created_at_ms, execution_id) < ("
        "SELECT created_at_ms, execution_id FROM executions WHERE reader = {reader}"
        " ORDER BY created_at_ms DESC, execution_id DESC LIMIT 1 OFFSET {offset})")
GET = ("SELECT body FROM executions"
       " WHERE execution_id = ? AND function_id = ? AND reader = ? AND expires_at_ms > ?")
EXPIRE = "DELETE FROM executions WHERE expires_at_ms <= ?"
