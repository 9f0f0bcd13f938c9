"""A small app with servicekit's plugin: one route of each kind its OpenAPI rules tell apart.

`tests/servicekit/test_openapi.py` builds it in-process and also serves it with uvicorn
(``tests.servicekit.docs_app:app``) for a real browser.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, delete, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, HeaderParameter

from servicekit.middleware import NO_CREDENTIAL_OPT, PUBLIC_ENDPOINT_OPT
from servicekit.openapi import BEARER_JWT, api_key_header
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin

TITLE = "Docs page demo"


class NoteIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Refuses fields it does not name."""

    text: str


class NoteOut(msgspec.Struct, frozen=True):
    """An answer: open, like every struct that does not forbid unknown fields."""

    id: int
    text: str


class LoginIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: str
    password: str


class PasswordIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    current_password: str
    new_password: str


async def admins_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.headers.get("x-role") != "admin":
        raise NotAuthorizedException()


@post("/login", opt=dict(NO_CREDENTIAL_OPT), status_code=200)
async def login(data: LoginIn) -> dict[str, str]:
    return {"access_token": "t"}


@post("/password", status_code=204)
async def change_password(data: PasswordIn) -> None:
    return None


@get("/notes")
async def list_notes() -> list[NoteOut]:
    return []


@get("/notes/{note_id:int}")
async def read_note(note_id: FromPath[int]) -> NoteOut:
    return NoteOut(note_id, "a note")


@post("/notes", status_code=202)
async def add_note(
    data: NoteIn,
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> NoteOut:
    return NoteOut(1, data.text)


class AdminController(Controller):
    path = "/admin"
    guards = [admins_only]  # noqa: RUF012 - Litestar's own attribute

    @delete("/notes/{note_id:int}", status_code=204)
    async def remove(self, note_id: FromPath[int]) -> None:
        return None


@get("/ping", opt=dict(PUBLIC_ENDPOINT_OPT))
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


def create_app() -> Litestar:
    """The demo app, with both kinds of credential declared."""
    return Litestar(
        route_handlers=[
            login,
            change_password,
            list_notes,
            read_note,
            add_note,
            AdminController,
            ping,
        ],
        plugins=[
            ServiceKitPlugin(
                ServiceKitConfig(
                    service="docs-demo",
                    security_schemes={"bearer": BEARER_JWT, "apiKey": api_key_header("X-API-Key")},
                )
            )
        ],
        openapi_config=OpenAPIConfig(title=TITLE, version="1.0", path="/schema"),
    )


app = create_app()
