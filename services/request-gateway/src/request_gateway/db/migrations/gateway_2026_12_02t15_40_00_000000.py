"""Hand-written: the request change sequence behind `GET /requests/events` and long polls.

Every change a user can see (a status, a forwarded cancel, a replaced outcome) gives the
request the next number of its user's own sequence (`user_quota.change_seq`, bumped under
that row's lock, so one user's numbers are committed in the order they were given) and
sends `NOTIFY gateway_requests, '<user id>'` in the same transaction. A trigger does it, so
no statement that changes a request can forget to.
"""

from servicekit.migrations import sql_migration

ID = "2026-12-02T15:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-user request change sequence and its notification"

# What a user sees change (the API's status, cancel_requested, response and error).
CHANGED = """OLD.status IS DISTINCT FROM NEW.status
    OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at
    OR OLD.finished_at IS DISTINCT FROM NEW.finished_at"""

STATEMENTS = [
    "ALTER TABLE user_quota ADD COLUMN IF NOT EXISTS change_seq bigint NOT NULL DEFAULT 0",
    "ALTER TABLE request ADD COLUMN IF NOT EXISTS change_seq bigint NOT NULL DEFAULT 0",
    "CREATE INDEX request_user_change_idx ON request (user_id, change_seq)",
    """CREATE FUNCTION request_number_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO user_quota AS q (user_id, pending, change_seq)
                VALUES (NEW.user_id, 0, 1)
                ON CONFLICT (user_id) DO UPDATE SET change_seq = q.change_seq + 1
                RETURNING q.change_seq INTO NEW.change_seq;
            -- Delivered at commit, once per user and transaction (PostgreSQL folds repeats).
            PERFORM pg_notify('gateway_requests', NEW.user_id::text);
            RETURN NEW;
        END $$""",
    """CREATE TRIGGER request_number_insert BEFORE INSERT ON request
        FOR EACH ROW EXECUTE FUNCTION request_number_change()""",
    f"""CREATE TRIGGER request_number_update BEFORE UPDATE ON request
        FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION request_number_change()""",
]

# Undoes STATEMENTS but keeps both columns (and their numbers): no row's content is lost,
# and going forwards again continues each user's sequence where it stopped.
BACKWARDS = [
    "DROP TRIGGER request_number_update ON request",
    "DROP TRIGGER request_number_insert ON request",
    "DROP FUNCTION request_number_change()",
    "DROP INDEX request_user_change_idx",
]


forwards = sql_migration("gateway", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
