"""The one Piccolo engine (and asyncpg pool) of a processor process."""

from __future__ import annotations

from typing import Final

from servicekit.database import DeferredPostgresEngine

DB: Final = DeferredPostgresEngine()
