"""Create ``auth_refresh_token``: hashed opaque refresh tokens grouped in families."""

from servicekit.migrations import sql_migration

ID = "2026-11-27T21:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "create auth_refresh_token"

STATEMENTS = (
    """
    CREATE TABLE auth_refresh_token (
        id uuid PRIMARY KEY,
        family_id uuid NOT NULL,
        user_id uuid NOT NULL,
        token_hash bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        family_expires_at timestamptz NOT NULL,
        used_at timestamptz,
        revoked_at timestamptz,
        revoked_reason text,
        user_agent text,
        ip text,
        CONSTRAINT auth_refresh_token_hash_is_sha256 CHECK (octet_length(token_hash) = 32),
        CONSTRAINT auth_refresh_token_within_family CHECK (expires_at <= family_expires_at),
        CONSTRAINT auth_refresh_token_reason_when_revoked
            CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
    )
    """,
    # Rotation and logout find a token by its hash.
    "CREATE UNIQUE INDEX auth_refresh_token_hash ON auth_refresh_token (token_hash)",
    # Revoking a family or all of a user's sessions touches only live rows.
    """
    CREATE INDEX auth_refresh_token_live_family ON auth_refresh_token (family_id)
    WHERE revoked_at IS NULL
    """,
    """
    CREATE INDEX auth_refresh_token_live_user ON auth_refresh_token (user_id)
    WHERE revoked_at IS NULL
    """,
    # The purge of families past their absolute lifetime.
    """
    CREATE INDEX auth_refresh_token_family_expiry ON auth_refresh_token (family_expires_at)
    """,
)

# Every session with it: after reversing this migration everyone logs in again.
BACKWARDS = ("DROP TABLE auth_refresh_token",)


forwards = sql_migration("authkit", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
