from servicekit.migrations import sql_migration

ID = "2026-11-27T20:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "add demo_item.colour"

STATEMENTS = ["ALTER TABLE demo_item ADD COLUMN colour text NOT NULL DEFAULT 'red'"]
BACKWARDS = ["ALTER TABLE demo_item DROP COLUMN colour"]

forwards = sql_migration("demo", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
