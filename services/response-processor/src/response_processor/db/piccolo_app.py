"""The processor's Piccolo app: its tables and migrations."""

from pathlib import Path

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
