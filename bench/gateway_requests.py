"""What wrk sends in the request-gateway benchmark: the same submit bodies to the ceiling
and the gateway, the gateway's with its users' real tokens, the ceiling's with stand-ins
of the same kind."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Final

from bench.wrk import WrkRequest

SUBMIT_VARIANTS: Final = 1_000
REPLAYED: Final = 1_000  # requests made with an Idempotency-Key, for `submit_replay`
TOKEN_CHARS: Final = 420  # the ceiling's stand-in tokens: about as long as the gateway's JWTs
JSON_HEADERS: Final = {"Content-Type": "application/json"}


def submit_body(number: int) -> str:
    """A submitted request's JSON body (about 100 B), distinct per `number`."""
    payload = {"query": f"quarterly report {number}", "limit": 10, "offset": number % 50}
    return json.dumps({"type": "echo", "payload": payload}, separators=(",", ":"))


def stand_in_token(number: int) -> str:
    """A token-shaped string of a real token's length, for requests nobody authenticates."""
    seed = hashlib.sha256(str(number).encode()).hexdigest()
    return (seed * (TOKEN_CHARS // len(seed) + 1))[:TOKEN_CHARS]


def ceiling_submit_requests() -> list[WrkRequest]:
    """SUBMIT_VARIANTS distinct `POST /insert` requests, each with its own stand-in token."""
    return [
        WrkRequest(
            "POST",
            "/insert",
            {**JSON_HEADERS, "Authorization": f"Bearer {stand_in_token(n)}"},
            submit_body(n),
        )
        for n in range(SUBMIT_VARIANTS)
    ]


def gateway_submit_requests(tokens: Sequence[str]) -> list[WrkRequest]:
    """The same SUBMIT_VARIANTS bodies as `POST /api/v1/requests`, rotating through the
    users' tokens (each user has its own rate limit)."""
    return [
        WrkRequest(
            "POST", "/api/v1/requests", {**JSON_HEADERS, "Authorization": f"Bearer {token}"}, body
        )
        for body, token in zip(
            (submit_body(n) for n in range(SUBMIT_VARIANTS)), itertools.cycle(tokens)
        )
    ]


def replay_requests(tokens: Sequence[str]) -> list[WrkRequest]:
    """REPLAYED submits, each with its own `Idempotency-Key` (sent once to make the request,
    then again and again by `submit_replay`)."""
    return [
        WrkRequest(
            "POST",
            "/api/v1/requests",
            {
                **JSON_HEADERS,
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f"bench-replay-{n}",
            },
            submit_body(n),
        )
        for n, token in zip(range(REPLAYED), itertools.cycle(tokens))
    ]


def status_read_requests(
    pairs: Sequence[tuple[uuid.UUID, uuid.UUID]], tokens: Mapping[uuid.UUID, str]
) -> list[WrkRequest]:
    """`GET /api/v1/requests/{id}` of each (request id, user id), with its owner's token."""
    return [
        WrkRequest(
            "GET", f"/api/v1/requests/{request_id}", {"Authorization": f"Bearer {tokens[u]}"}
        )
        for request_id, u in pairs
    ]
