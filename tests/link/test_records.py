"""Record kinds: each direction's union decodes its kinds and refuses anything else."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
import pytest

from airlink.records import (
    Ack,
    Cancel,
    ProfileType,
    RequestErrorCode,
    Response,
    ResponseError,
    ToGateway,
    ToProcessor,
    User,
    UserSnapshot,
    kind_of,
)
from tests.link.conftest import T0, request, response

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
to_processor: msgspec.json.Decoder[Any] = msgspec.json.Decoder(ToProcessor)
to_gateway: msgspec.json.Decoder[Any] = msgspec.json.Decoder(ToGateway)

GATEWAY_RECORDS = [
    response(1),
    msgspec.structs.replace(
        response(2), status="failed", result=None, error=ResponseError("timeout", "took too long")
    ),
    User(uuid.uuid4(), "ada", HASH, ["user", "admin"], "standard", True, False, 3),
    ProfileType("standard", 60, 10, ["echo", "documents.search"], 65536, 5, 1),
    UserSnapshot([uuid.uuid4()], ["standard"], T0),
    Ack(uuid.uuid4(), 42),
]
PROCESSOR_RECORDS = [request(1), Cancel(uuid.uuid4(), uuid.uuid4(), T0), Ack(uuid.uuid4(), 1)]


@pytest.mark.parametrize("record", GATEWAY_RECORDS, ids=kind_of)
def test_every_gateway_kind_round_trips_through_its_union(record: Any) -> None:
    assert to_gateway.decode(msgspec.json.encode(record)) == record


@pytest.mark.parametrize("record", PROCESSOR_RECORDS, ids=kind_of)
def test_every_processor_kind_round_trips_through_its_union(record: Any) -> None:
    assert to_processor.decode(msgspec.json.encode(record)) == record


def test_a_kind_of_the_other_direction_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'response'"):
        to_processor.decode(msgspec.json.encode(response(1)))
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'request'"):
        to_gateway.decode(msgspec.json.encode(request(1)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"created_at": "2026-11-28T12:00:00"}, "created_at"),  # no time zone
        ({"type": ""}, "type"),
        ({"type": "x" * 101}, "type"),
        ({"trace_id": ""}, "trace_id"),
        ({"id": "not-a-uuid"}, "id"),
    ],
)
def test_a_request_breaking_a_constraint_is_refused(change: dict[str, Any], field: str) -> None:
    line = msgspec.json.decode(msgspec.json.encode(request(1)))
    line.update(change)
    with pytest.raises(msgspec.ValidationError, match=f"at `\\$.{field}`"):
        to_processor.decode(msgspec.json.encode(line))


def test_a_response_status_outside_the_four_is_refused() -> None:
    line = msgspec.json.decode(msgspec.json.encode(response(1)))
    line["status"] = "exported"
    with pytest.raises(msgspec.ValidationError, match="status"):
        to_gateway.decode(msgspec.json.encode(line))


def test_a_user_without_an_argon2id_hash_is_refused() -> None:
    user = User(uuid.uuid4(), "ada", "plain", ["user"], "standard", True, False, 1)
    with pytest.raises(msgspec.ValidationError, match="password_hash"):
        to_gateway.decode(msgspec.json.encode(user))


def test_unknown_fields_are_ignored_so_sides_can_upgrade_one_at_a_time() -> None:
    line = msgspec.json.decode(msgspec.json.encode(request(1)))
    line["priority"] = "high"
    assert to_processor.decode(msgspec.json.encode(line)) == request(1)


def test_timestamps_keep_their_time_zone() -> None:
    decoded = to_processor.decode(msgspec.json.encode(request(1)))
    assert isinstance(decoded.created_at, datetime)
    assert decoded.created_at.utcoffset() is not None


def test_kind_of_names_the_tag() -> None:
    assert [kind_of(r) for r in GATEWAY_RECORDS] == [
        "response",
        "response",
        "user",
        "profile_type",
        "user_snapshot",
        "ack",
    ]
    with pytest.raises(TypeError):
        kind_of(ResponseError("x", "y"))


def test_a_request_error_code_crosses_as_the_plain_string_older_batches_carry() -> None:
    plain = Response(
        request_id=uuid.UUID(int=1),
        status="failed",
        result=None,
        error=ResponseError("handler_timeout", "no result within 30 s"),
        finished_at=T0,
        trace_id="t",
    )
    typed = msgspec.structs.replace(
        plain, error=ResponseError(RequestErrorCode.HANDLER_TIMEOUT, "no result within 30 s")
    )
    assert msgspec.json.encode(typed) == msgspec.json.encode(plain)
    decoded = to_gateway.decode(msgspec.json.encode(plain))
    assert decoded == typed
    assert decoded.error.code == RequestErrorCode.HANDLER_TIMEOUT
