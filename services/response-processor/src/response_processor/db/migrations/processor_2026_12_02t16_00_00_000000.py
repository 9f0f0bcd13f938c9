"""Hand-written: the workers' scheduler state, apart from the audit log (whose retention must
not change when periodic work runs)."""

from servicekit.migrations import sql_migration

ID = "2026-12-02T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "scheduler state: when each periodic task last ran"

STATEMENTS = [
    """CREATE TABLE scheduler_state (
        task varchar(64) PRIMARY KEY, last_run_at timestamptz NOT NULL)""",
    # The last snapshot was known from the audit log until now: the cadence carries on.
    """INSERT INTO scheduler_state (task, last_run_at)
        SELECT 'users_snapshot', max(at) FROM audit_log WHERE action = 'users_snapshot'
        HAVING max(at) IS NOT NULL""",
]

BACKWARDS = ["DROP TABLE scheduler_state"]


forwards = sql_migration("processor", ID, DESCRIPTION, STATEMENTS, BACKWARDS)
