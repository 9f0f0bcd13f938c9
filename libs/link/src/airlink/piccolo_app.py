"""The Piccolo app `airlink`: the link's tables, made by hand-written SQL migrations.

A service lists it before its own app: `migrate(dsn, ["airlink.piccolo_app", ...])`. The
library reads and writes these tables with SQL through the service's asyncpg pool, so the
app declares no table classes.
"""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="airlink",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[],
)
