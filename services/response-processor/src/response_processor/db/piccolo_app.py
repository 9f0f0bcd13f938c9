"""The processor's Piccolo app: its tables and migrations, and `APPS`, every app the service
migrates, in order."""

from pathlib import Path
from typing import Final

from piccolo.conf.apps import AppConfig

from response_processor.db.tables import (
    AppUser,
    AuditEntry,
    DeadLetter,
    Document,
    ProfileType,
    Request,
    RequestCancel,
    SeedApplied,
)

APP_CONFIG = AppConfig(
    app_name="processor",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[
        ProfileType,
        AppUser,
        Request,
        RequestCancel,
        DeadLetter,
        Document,
        AuditEntry,
        SeedApplied,
    ],
)

APPS: Final = ["airlink.piccolo_app", "authkit.piccolo_app", "response_processor.db.piccolo_app"]
