"""The gateway's Piccolo app: its tables and migrations, and `APPS`, every app the service
migrates, in order."""

from pathlib import Path
from typing import Final

from piccolo.conf.apps import AppConfig

from request_gateway.db.tables import ApiKey, AppUser, AuditEntry, ProfileType, Request, UserQuota

APP_CONFIG = AppConfig(
    app_name="gateway",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[ProfileType, AppUser, ApiKey, Request, UserQuota, AuditEntry],
)

APPS: Final = ["airlink.piccolo_app", "authkit.piccolo_app", "request_gateway.db.piccolo_app"]
