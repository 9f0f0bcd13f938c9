"""Redaction rules: what counts as a secret in a log line, an error detail or a health report.

Two rules, applied together:

- a value stored under a sensitive *key* (``password``, ``access_token``, ``authorization``,
  ``password_hash``, ...) is replaced whole with ``[REDACTED]``, whatever its type;
- any *string* anywhere is scrubbed of secret-looking substrings: JWTs, ``Bearer``/``Basic``
  credentials, argon2 and bcrypt hashes, PEM private keys, passwords in URLs and DSNs, and
  ``password=...``-style pairs.

Digests and identifiers (``sha256``, ``batch_id``, ``key_id``, ``token_type``,
``expires_in``, ``record_count``) are deliberately left alone: they help operators and
reveal nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import msgspec

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "redact_event",
    "redact_mapping",
    "redact_value",
    "scrub_text",
]

REDACTED = "[REDACTED]"

# Substrings that make a key sensitive wherever they appear in it.
_SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "authorization",
    "cookie",
    "apikey",
    "api_key",
    "privatekey",
    "private_key",
    "credential",
    "signing_key",
)
# Exact keys, and suffixes that name a secret (``access_token``, ``key_hash``): matching on
# the suffix spares harmless neighbours such as ``token_type`` and ``hash_algorithm``.
_SENSITIVE_KEYS = frozenset({"pwd", "token", "hash", "auth"})
_SENSITIVE_SUFFIXES = ("token", "_tokens", "_hash")

# structlog's own bookkeeping keys on stdlib records; never touched.
_META_KEYS = frozenset({"_record", "_from_structlog"})

_KEY_VALUE_NAMES = r"[\w-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|authorization)"

# Order matters: whole blocks (PEM) before the patterns that could match inside them.
# Each pattern comes with the lower-case substrings it cannot match without: most log
# strings contain none of them, and a few substring tests cost far less than the regexes.
_SCRUBBERS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    # A PEM private key block; an unterminated one (truncated output) is cut to the end.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)",
            re.DOTALL,
        ),
        REDACTED,
        ("-----begin",),
    ),
    # An age identity (a batch decryption key): bech32, upper case, after its fixed prefix.
    (re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+"), REDACTED, ("age-secret-key-1",)),
    # JSON Web Tokens: three base64url segments, the header always starting with eyJ.
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED, ("eyj",)),
    # An Authorization scheme, not a value such as token_type=bearer.
    (
        re.compile(r"(?<![=\"'])\b((?i:bearer))\s+[A-Za-z0-9._~+/=-]{8,}"),
        r"\1 " + REDACTED,
        ("bearer",),
    ),
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/=]{8,}"), r"\1 " + REDACTED, ("basic",)),
    # Password hashes: argon2 (PHC string) and bcrypt ($2a$/$2b$/$2y$).
    (re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9$=,+/.]+"), REDACTED, ("$argon2",)),
    (re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{20,}"), REDACTED, ("$2",)),
    # The password part of a URL's userinfo: scheme://user:PASSWORD@host.
    (
        re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)[^\s@/?#]+@"),
        r"\1***@",
        ("://",),
    ),
    # key=value and "key": "value" pairs in query strings, DSNs, headers and dumped JSON.
    (
        re.compile(rf"(?i)(\b{_KEY_VALUE_NAMES}[\"']?\s*[:=]\s*[\"']?)([^\s\"'&;,}}]+)"),
        r"\1***",
        ("pass", "pwd", "secret", "token", "key", "authorization"),
    ),
)

# On the lower-cased text: a case-sensitive alternation is several times faster.
_ANY_NEED = re.compile("|".join(re.escape(part) for _, _, needs in _SCRUBBERS for part in needs))


# Log lines and settings use a small, fixed set of key names: remembering the verdict per name
# turns the check into one dictionary lookup on the access log's hot path.
@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Tell whether a value stored under ``key`` must never be shown."""
    normalized = key.lower().replace("-", "_")
    if normalized in _SENSITIVE_KEYS:
        return True
    if any(part in normalized for part in _SENSITIVE_KEY_PARTS):
        return True
    return normalized.endswith(_SENSITIVE_SUFFIXES)


def scrub_text(text: str) -> str:
    """Replace secret-looking substrings (JWTs, bearer tokens, hashes, keys, URL passwords)."""
    lowered = text.lower()
    if not _ANY_NEED.search(lowered):
        return text
    for pattern, replacement, needs in _SCRUBBERS:
        if any(part in lowered for part in needs):
            text = pattern.sub(replacement, text)
    return text


def redact_value(value: object) -> object:
    """Return ``value`` with sensitive keys replaced and every string scrubbed, recursively."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return scrub_text(value.decode("utf-8", errors="replace"))
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    if isinstance(value, msgspec.Struct):
        # Structs (settings, bodies) are walked as mappings, so their secret fields are caught
        # by name rather than leaking through their repr.
        return redact_value(msgspec.structs.asdict(value))
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return scrub_text(str(value))


def redact_mapping(mapping: Mapping[Any, object]) -> dict[str, object]:
    """Return a copy of ``mapping`` with sensitive keys replaced and every value redacted."""
    return {str(key): _redact_item(str(key), value) for key, value in mapping.items()}


def _redact_item(key: str, value: object) -> object:
    # None and "" stay visible: "the password is unset" is worth seeing and reveals nothing.
    if is_sensitive_key(key) and value is not None and value != "":
        return REDACTED
    return redact_value(value)


def redact_event(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every value of the event dict, tracebacks included."""
    for key, value in event_dict.items():
        if key not in _META_KEYS:
            event_dict[key] = _redact_item(key, value)
    return event_dict
