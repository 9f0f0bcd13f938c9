"""The handler registry: built-ins, operators' entry points, and their conflicts."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from response_processor.processing.handlers.registry import (
    ENTRY_POINT_GROUP,
    HandlerConflict,
    load_registry,
)

MODULE = "tests.response_processor.example_handlers"


def point(name: str, attribute: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{MODULE}:{attribute}", group=ENTRY_POINT_GROUP)


def test_the_built_ins_are_always_there() -> None:
    assert {"echo", "documents.search"} <= set(load_registry([]))


def test_an_entry_point_adds_a_request_type() -> None:
    registry = load_registry([point("inventory", "handler")])
    assert registry["inventory.lookup"].timeout_s == 5


def test_two_handlers_for_one_type_are_refused() -> None:
    with pytest.raises(HandlerConflict, match="already handled"):
        load_registry([point("a", "handler"), point("b", "handler")])


def test_an_entry_point_that_is_not_a_handler_is_refused() -> None:
    with pytest.raises(HandlerConflict, match="not a response_processor Handler"):
        load_registry([point("bad", "not_a_handler")])
