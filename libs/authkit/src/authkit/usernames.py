"""How usernames compare: the one normalisation the login limiter, the lookup and uniqueness use.

A name is compared by `canonical_username`: ASCII letters lowered, every other character
kept as it is. PostgreSQL computes exactly the same with `CANONICAL_USERNAME_SQL`
(``lower()`` under the ``"C"`` collation maps only A-Z), so the limiter's key and the
account a login finds always agree. Unicode case mappings (``İ`` → ``i``, the Kelvin sign
→ ``k``, ``ſ`` → ``s``, ``ß`` → ``ss``) are deliberately not applied: each would let many
spellings reach one account, and each spelling would count against its own login limit.
Airlock's usernames are ASCII, so no real name is affected.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CANONICAL_USERNAME_SQL", "canonical_username", "canonical_username_sql"]

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def canonical_username(username: str) -> str:
    """The form two usernames are compared in (see the module docstring)."""
    return username.translate(_ASCII_LOWER)


def canonical_username_sql(column: str) -> str:
    """SQL computing `canonical_username` of ``column`` (a trusted column name)."""
    return f'lower({column} COLLATE "C")'


CANONICAL_USERNAME_SQL: Final = canonical_username_sql("username")
"""`canonical_username` of an ``app_user.username``, in SQL."""
