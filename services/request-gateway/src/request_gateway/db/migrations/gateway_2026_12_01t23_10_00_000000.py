"""Hand-written: what Piccolo's columns cannot say (partial and expression indexes, checks,
the submit function that keeps idempotency and the pending limit exact, the trigger that
releases a pending slot, and the append-only audit log)."""

from servicekit.migrations import sql_migration

ID = "2026-12-01T23:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes, checks, submit function, pending quota trigger, append-only audit log"

PENDING = "('queued', 'exported', 'delivered')"

STATEMENTS = [
    "CREATE UNIQUE INDEX app_user_username_lower_idx ON app_user (lower(username))",
    """ALTER TABLE app_user ADD CONSTRAINT app_user_roles_check
        CHECK (roles <@ ARRAY['user', 'operator', 'admin']::varchar[])""",
    """ALTER TABLE request ADD CONSTRAINT request_status_check CHECK (status IN
        ('queued', 'exported', 'delivered', 'completed', 'failed', 'cancelled', 'expired'))""",
    # Only requests that carry a key pay for this index.
    """CREATE UNIQUE INDEX request_idempotency_idx ON request (user_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX request_user_created_idx ON request (user_id, created_at DESC, id DESC)",
    "CREATE INDEX request_created_idx ON request (created_at DESC, id DESC)",
    f"CREATE INDEX request_pending_idx ON request (created_at) WHERE status IN {PENDING}",
    # One round trip per submit: a repeated idempotency key returns the request it made;
    # otherwise a pending slot is taken (or the submit refused) and the request inserted.
    # The user's quota row serialises that user's concurrent submits, so both the key and
    # the limit stay exact across server processes.
    f"""CREATE FUNCTION submit_request(
            p_id uuid, p_user_id uuid, p_type text, p_payload jsonb, p_trace_id text,
            p_idempotency_key text, p_max_pending integer)
        RETURNS SETOF request LANGUAGE plpgsql AS $$
        BEGIN
            IF p_idempotency_key IS NOT NULL THEN
                RETURN QUERY SELECT * FROM request
                    WHERE user_id = p_user_id AND idempotency_key = p_idempotency_key;
                IF FOUND THEN RETURN; END IF;
            END IF;
            INSERT INTO user_quota AS q (user_id, pending) VALUES (p_user_id, 1)
                ON CONFLICT (user_id) DO UPDATE SET pending = q.pending + 1
                WHERE q.pending < p_max_pending;
            IF NOT FOUND OR p_max_pending < 1 THEN
                RAISE EXCEPTION 'too many pending requests' USING ERRCODE = 'AL001';
            END IF;
            RETURN QUERY INSERT INTO request
                    (id, user_id, type, payload, trace_id, idempotency_key)
                VALUES (p_id, p_user_id, p_type, p_payload, p_trace_id, p_idempotency_key)
                ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                DO NOTHING
                RETURNING *;
            IF NOT FOUND THEN
                -- A concurrent submit with the same key committed first: give the slot back.
                UPDATE user_quota SET pending = pending - 1 WHERE user_id = p_user_id;
                RETURN QUERY SELECT * FROM request
                    WHERE user_id = p_user_id AND idempotency_key = p_idempotency_key;
            END IF;
        END $$""",
    f"""CREATE FUNCTION request_release_quota() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE user_quota AS q SET pending = q.pending - released.n
            FROM (SELECT new_row.user_id, count(*) AS n
                  FROM old_rows AS old_row JOIN new_rows AS new_row ON new_row.id = old_row.id
                  WHERE old_row.status IN {PENDING} AND new_row.status NOT IN {PENDING}
                  GROUP BY new_row.user_id) AS released
            WHERE q.user_id = released.user_id;
            RETURN NULL;
        END $$""",
    """CREATE TRIGGER request_release_quota AFTER UPDATE ON request
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION request_release_quota()""",
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]

# Undoes STATEMENTS, last first: no table or column goes, so no row is lost.
BACKWARDS = [
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "DROP TRIGGER audit_log_no_change ON audit_log",
    "DROP FUNCTION audit_log_append_only()",
    "DROP TRIGGER request_release_quota ON request",
    "DROP FUNCTION request_release_quota()",
    "DROP FUNCTION submit_request(uuid, uuid, text, jsonb, text, text, integer)",
    "DROP INDEX request_pending_idx",
    "DROP INDEX request_created_idx",
    "DROP INDEX request_user_created_idx",
    "DROP INDEX request_idempotency_idx",
    "ALTER TABLE request DROP CONSTRAINT request_status_check",
    "ALTER TABLE app_user DROP CONSTRAINT app_user_roles_check",
    "DROP INDEX app_user_username_lower_idx",
]


forwards = sql_migration("gateway", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
