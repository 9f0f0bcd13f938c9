from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-27T20:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "add demo_item.colour"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="demo", description=DESCRIPTION)

    async def run() -> None:
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl("ALTER TABLE demo_item ADD COLUMN colour text NOT NULL DEFAULT 'red'")

    manager.add_raw(run)
    return manager
