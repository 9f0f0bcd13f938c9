"""A Piccolo app for the migration tests: one table made by raw SQL, then a column added."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="demo",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[],
)
