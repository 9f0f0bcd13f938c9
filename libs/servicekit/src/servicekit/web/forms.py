"""Form posts → a JSON API's own input structs, and its errors → messages beside each field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec
from litestar import Request

from servicekit.errors import ApiError, validation_error

T = TypeVar("T")

FORM_ERROR = "_form"
"""The key of an error about the form as a whole."""


async def form_fields(
    request: Request[Any, Any, Any], *, lists: Iterable[str] = ()
) -> dict[str, Any]:
    """The posted fields: one string each (without the CSRF token), a list for ``lists``."""
    form = await request.form()
    wanted_lists = set(lists)
    fields: dict[str, Any] = {}
    for key in form:
        if key == "_csrf_token":
            continue
        fields[key] = form.getall(key) if key in wanted_lists else form.get(key)
    for key in wanted_lists:
        fields.setdefault(key, [])
    return fields


def decode_form(fields: Mapping[str, Any], into: type[T]) -> T:
    """The struct the JSON API would decode (its rules, its messages); numbers and booleans
    come as text from a form. A failure is the API's 400 `ApiError`."""
    try:
        return msgspec.convert(dict(fields), into, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, source="form") from None


def field_errors(exc: ApiError, problems: Mapping[str, str] | None = None) -> dict[str, str]:
    """Messages by field name (``_form`` for the rest) from an API error; a weak password's
    problem codes (authkit's) are said with ``problems``."""
    details = exc.details
    if isinstance(details, list):
        errors = {
            str(item.get("field") or FORM_ERROR): str(item.get("message", exc.message))
            for item in details
            if isinstance(item, dict)
        }
        if errors:
            return errors
    if isinstance(details, dict) and isinstance(details.get("problems"), list):
        said = [(problems or {}).get(str(code), str(code)) for code in details["problems"]]
        return {"password": " ".join(said)}
    return {FORM_ERROR: exc.message}


def blank_to_unset(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    """Drop fields left empty (a PATCH leaves them as they are)."""
    return {k: v for k, v in fields.items() if not (k in names and v in ("", None))}
