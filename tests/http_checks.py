"""HTTP contract checks both services' tests run over every route of their app."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

_SAMPLE_BY_TYPE: dict[type, str] = {uuid.UUID: str(uuid.UUID(int=1)), int: "1"}


def _concrete(route: HTTPRoute) -> str:
    """The route's path with a sample value for each path parameter."""
    types = {name: param.type for name, param in route.path_parameters.items()}
    return re.sub(
        r"\{(\w+)(?::\w+)?\}", lambda m: _SAMPLE_BY_TYPE.get(types[m.group(1)], "x"), route.path
    )


async def assert_options_lists_every_method(client: AsyncTestClient[Any], app: Litestar) -> None:
    """OPTIONS without a credential answers 204 with ``Allow`` naming every method of the path."""
    wrong = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        answer = await client.options(_concrete(route))
        expected = ", ".join(sorted(route.methods))
        if answer.status_code != 204 or answer.headers.get("allow") != expected:
            wrong.append((route.path, answer.status_code, answer.headers.get("allow"), expected))
    assert not wrong, wrong
