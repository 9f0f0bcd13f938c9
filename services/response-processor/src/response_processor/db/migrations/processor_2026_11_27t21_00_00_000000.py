"""Hand-written: what Piccolo's columns cannot say (search vectors, partial and expression
indexes, checks, and the append-only audit log)."""

from servicekit.migrations import sql_migration

ID = "2026-11-27T21:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "search vectors, indexes, checks, append-only audit log"

STATEMENTS = [
    # Title words weigh more than body words in the ranking.
    """ALTER TABLE document ADD COLUMN search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A')
        || setweight(to_tsvector('english', coalesce(body, '')), 'B')) STORED""",
    "CREATE INDEX document_search_idx ON document USING gin (search)",
    "CREATE UNIQUE INDEX app_user_username_lower_idx ON app_user (lower(username))",
    """CREATE INDEX request_unfinished_idx ON request (id)
        WHERE status IN ('received', 'processing')""",
    "CREATE INDEX request_user_created_idx ON request (user_id, created_at DESC)",
    "CREATE UNIQUE INDEX seed_applied_kind_name_idx ON seed_applied (kind, name)",
    "CREATE INDEX dead_letter_open_idx ON dead_letter (created_at) WHERE retried_at IS NULL",
    # Every index costs each of the 100,000 inserts of a large import: only these three.
    "CREATE INDEX request_received_idx ON request (received_at DESC)",
    """ALTER TABLE request ADD CONSTRAINT request_status_check CHECK (status IN
        ('received', 'processing', 'completed', 'failed', 'cancelled', 'rejected'))""",
    """ALTER TABLE app_user ADD CONSTRAINT app_user_roles_check
        CHECK (roles <@ ARRAY['user', 'operator', 'admin']::varchar[])""",
    """ALTER TABLE profile_type ADD CONSTRAINT profile_type_limits_check CHECK (
        requests_per_minute > 0 AND burst > 0 AND max_payload_bytes > 0
        AND max_pending_requests > 0)""",
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]

# Undoes STATEMENTS, last first: only the generated search column goes (it is computed from
# title and body, and comes back with them when this migration runs again).
BACKWARDS = [
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "DROP TRIGGER audit_log_no_change ON audit_log",
    "DROP FUNCTION audit_log_append_only()",
    "ALTER TABLE profile_type DROP CONSTRAINT profile_type_limits_check",
    "ALTER TABLE app_user DROP CONSTRAINT app_user_roles_check",
    "ALTER TABLE request DROP CONSTRAINT request_status_check",
    "DROP INDEX request_received_idx",
    "DROP INDEX dead_letter_open_idx",
    "DROP INDEX seed_applied_kind_name_idx",
    "DROP INDEX request_user_created_idx",
    "DROP INDEX request_unfinished_idx",
    "DROP INDEX app_user_username_lower_idx",
    "DROP INDEX document_search_idx",
    "ALTER TABLE document DROP COLUMN search",
]


forwards = sql_migration("processor", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
