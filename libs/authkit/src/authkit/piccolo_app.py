"""The ``authkit`` Piccolo app: the refresh-token table, made by hand-written SQL migrations.

Services list ``"authkit.piccolo_app"`` among the apps they pass to
`servicekit.migrations.migrate`.
"""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="authkit",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[],
)
