"""Add ``auth_refresh_token.session_version``: the user's session version at login.

A refresh compares it with the user's current one, so a family started before a password
change or a deactivation can never mint another access token, even if its revocation was
missed. Families from before this migration have none and are refused: users log in again.
"""

from servicekit.migrations import sql_migration

ID = "2026-12-02T12:10:10:000000"
VERSION = "1.38.0"
DESCRIPTION = "auth_refresh_token.session_version"

STATEMENTS = ("ALTER TABLE auth_refresh_token ADD COLUMN session_version integer",)

BACKWARDS = ("ALTER TABLE auth_refresh_token DROP COLUMN session_version",)


forwards = sql_migration("authkit", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
