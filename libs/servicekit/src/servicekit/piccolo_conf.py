"""The Piccolo configuration `servicekit.migrations` runs with (PICCOLO_CONF points here).

Piccolo finds its engine and apps through a configuration module. This one is built from
the environment of the migration process: `PICCOLO_DSN` (the database) and `PICCOLO_APPS`
(comma-separated `package.piccolo_app` modules, in dependency order).
"""

from __future__ import annotations

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

DB = PostgresEngine(config={"dsn": os.environ.get("PICCOLO_DSN", "")})

APP_REGISTRY = AppRegistry(
    apps=[app for app in os.environ.get("PICCOLO_APPS", "").split(",") if app]
)
