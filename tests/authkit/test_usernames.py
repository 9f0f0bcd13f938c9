"""Usernames compare one way everywhere: Python's `canonical_username` equals the SQL form,
so the login limiter's key and the account a login finds can never disagree."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authkit.login_limits import username_key
from authkit.usernames import CANONICAL_USERNAME_SQL, canonical_username

Conn: TypeAlias = "asyncpg.Connection[Any]"

# Characters whose case mappings differ between Unicode, Python's casefold and the locale's
# lower(): dotted capital I, sharp s and its capital, the Kelvin sign, long s, sigmas.
TRICKY = [
    "\u0130",  # İ: lower() in a UTF-8 locale gives i
    "\u0131",  # ı: dotless i, uppercases to I
    "\u00df",  # ß: casefolds to ss
    "\u1e9e",  # ẞ: capital sharp s
    "\u212a",  # Kelvin sign: lowers to k
    "\u017f",  # ſ: long s, uppercases to S
    "\u03a3",  # Σ
    "\u03c2",  # ς: final sigma, casefolds to σ
    "\u01c5",  # ǅ: titlecase digraph
    "\ufb00",  # ﬀ: casefolds to ff
    "\u212b",  # Angstrom sign: lowers to å
]


@pytest.mark.parametrize("character", TRICKY)
def test_a_special_case_mapping_never_turns_into_an_ascii_letter(character: str) -> None:
    name = f"adm{character}n"
    assert canonical_username(name) == name.replace("A", "a") != "admin"
    assert username_key(name) != username_key("admin")


def test_ascii_case_alone_makes_no_difference() -> None:
    assert canonical_username("Alice.Example-1") == "alice.example-1"
    assert username_key("ALICE") == username_key("alice")


async def _sql_form(conn: Conn, name: str) -> str:
    form: str = await conn.fetchval(
        f"SELECT {CANONICAL_USERNAME_SQL} FROM (SELECT $1::text AS username) AS t",  # noqa: S608
        name,
    )
    return form


@pytest.mark.parametrize("character", TRICKY)
async def test_postgresql_computes_the_same_form(conn: Conn, character: str) -> None:
    name = f"Adm{character}N{character.upper()}{character.lower()}"
    assert await _sql_form(conn, name) == canonical_username(name)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0")))
def test_the_canonical_form_changes_nothing_but_ascii_capitals(name: str) -> None:
    canonical = canonical_username(name)
    assert len(canonical) == len(name)
    pairs = zip(name, canonical, strict=True)
    assert all(a == b or ("A" <= a <= "Z" and a.lower() == b) for a, b in pairs)


async def test_postgresql_agrees_on_every_character_of_the_first_planes(conn: Conn) -> None:
    characters = "".join(chr(c) for c in range(1, 0x3000) if not 0xD800 <= c < 0xE000)
    assert await _sql_form(conn, characters) == canonical_username(characters)
