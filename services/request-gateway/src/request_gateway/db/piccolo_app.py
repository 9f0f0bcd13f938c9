"""The gateway's Piccolo app: its tables and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from request_gateway.db.tables import ApiKey, AppUser, AuditEntry, ProfileType, Request, UserQuota

APP_CONFIG = AppConfig(
    app_name="gateway",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[ProfileType, AppUser, ApiKey, Request, UserQuota, AuditEntry],
)
