from servicekit.migrations import sql_migration

ID = "2026-11-27T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "create demo_item"

STATEMENTS = [
    "CREATE TABLE demo_item (id bigserial PRIMARY KEY, name text NOT NULL)",
    # Slow enough that a concurrent migrate would overlap with it without the lock.
    "SELECT pg_sleep(0.5)",
]

forwards = sql_migration("demo", ID, DESCRIPTION, STATEMENTS)
