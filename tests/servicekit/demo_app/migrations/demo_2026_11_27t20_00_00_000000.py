from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-27T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "create demo_item"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="demo", description=DESCRIPTION)

    async def run() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(
            "CREATE TABLE demo_item (id bigserial PRIMARY KEY, name text NOT NULL)"
        )
        # Slow enough that a concurrent migrate would overlap with it without the lock.
        await engine.run_ddl("SELECT pg_sleep(0.5)")

    manager.add_raw(run)
    return manager
