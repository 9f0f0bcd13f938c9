"""`/api/v1/batches`: what crossed the link, each way (operators and admins)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from airlink.api import batches_controller
from response_processor.api.context import runtime_of
from response_processor.api.guards import READ
from servicekit.database import Pool


def _pool(connection: ASGIConnection[Any, Any, Any, Any]) -> Pool:
    return runtime_of(connection).pool


BatchesController = batches_controller(_pool, path="/api/v1/batches", guards=[READ])
