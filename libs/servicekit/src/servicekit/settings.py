"""Settings from environment variables, decoded into a service's own `msgspec.Struct`.

Conventions (docs/servicekit.md has the full list):

- field ``database_url`` is read from ``{PREFIX}DATABASE_URL``;
- ``{PREFIX}FOO_FILE`` reads field ``foo`` from a file (Docker and Kubernetes secrets), one
  trailing newline stripped; setting both ``FOO`` and ``FOO_FILE`` is an error;
- any other ``{PREFIX}*`` variable is an error, so a typo cannot silently leave a default;
- values convert leniently: numbers, booleans (true/false, 1/0, yes/no, on/off), durations
  as seconds, lists as comma-separated values or a JSON array, objects as JSON, paths; an
  empty value sets an optional (``X | None``) field to None;
- every problem is collected into one `SettingsError`; messages name the variable and never
  repeat the value of a secret;
- fields typed `Secret` are masked by `settings_for_log`, and with ``env="production"``
  `validate_production` refuses secrets that are empty or still at their development default;
- `server_password_problems` checks that a PostgreSQL or Redis URL carries a real password,
  for the services' own ``production_problems``.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, Final, Literal, Protocol, TypeVar, get_args, get_origin
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from servicekit.redaction import REDACTED, redact_mapping

__all__ = [
    "Environment",
    "ProductionChecked",
    "Secret",
    "ServiceSettings",
    "SettingsError",
    "json_logs",
    "load_settings",
    "server_password_problems",
    "service_production_problems",
    "settings_for_log",
    "validate_production",
]

Secret = Annotated[str, msgspec.Meta(extra={"secret": True})]
"""A string setting that must never be logged or echoed (passwords, signing keys)."""

Environment = Literal["development", "production"]
"""The type of the conventional ``env`` field: ``production`` turns on strict validation."""

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)

_FILE_SUFFIX = "_FILE"
_BOOLEAN_WORDS: Mapping[str, bool] = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
_SEQUENCE_TYPES = (list, tuple, set, frozenset)
# Passwords that images, tutorials and our own compose examples use: never real ones.
DEFAULT_SERVER_PASSWORDS: Final = frozenset(
    {"postgres", "password", "airlock", "changeme", "change-me", "redis", "secret", "admin"}
)


class ProductionChecked(Protocol):
    """A settings struct that adds its own production checks (signing enabled, ...)."""

    def production_problems(self) -> list[str]:
        """Return one message per setting that is unacceptable in production."""
        ...


class SettingsError(Exception):
    """Settings could not be loaded; ``problems`` lists every reason, one per variable."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    env_var: str
    annotation: Any
    required: bool
    default: object
    secret: bool


def load_settings(
    cls: type[SettingsT], *, prefix: str, environ: Mapping[str, str] | None = None
) -> SettingsT:
    """Build ``cls`` from the ``{prefix}*`` variables of ``environ`` (default: os.environ)."""
    env = os.environ if environ is None else environ
    specs = _field_specs(cls, prefix)
    problems: list[str] = []
    raw = _collect_raw_values(specs, prefix, env, problems)
    values: dict[str, object] = {}
    for spec in specs:
        if spec.name in raw:
            source, text = raw[spec.name]
            try:
                values[spec.name] = _convert(text, spec.annotation)
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
                problems.append(f"{source}: {exc}")
        elif spec.required:
            problems.append(f"{spec.env_var}: required but not set (or set {spec.env_var}_FILE)")
    if problems:
        raise SettingsError(problems)
    try:
        settings = cls(**values)
    except (TypeError, ValueError) as exc:
        # Cross-field checks in the struct's __post_init__.
        raise SettingsError([f"{cls.__name__}: {exc}"]) from None
    validate_production(settings, prefix=prefix)
    return settings


def validate_production(settings: msgspec.Struct, *, prefix: str) -> None:
    """In production, refuse empty or default secrets and the struct's own reported problems."""
    if getattr(settings, "env", None) != "production":
        return
    problems: list[str] = []
    for spec in _field_specs(type(settings), prefix):
        if not spec.secret:
            continue
        value = getattr(settings, spec.name)
        if not value:
            problems.append(f"{spec.env_var}: must be set in production")
        elif value == spec.default:
            problems.append(f"{spec.env_var}: still the development default; set a real secret")
    production_problems = getattr(settings, "production_problems", None)
    if callable(production_problems):
        problems.extend(production_problems())
    if problems:
        raise SettingsError(problems)


def server_password_problems(variable: str, url: str | None) -> list[str]:
    """Refuse a PostgreSQL or Redis URL without a password, or with a well-known default one.

    The password is looked for where clients read it: the URL's user information or its
    ``password`` query parameter. Messages name ``variable``, never the URL or the password.
    None (no URL) passes: whether a URL is required at all is the caller's check.
    """
    if url is None:
        return []
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        username = unquote(parts.username or "")
        password = unquote(parts.password or "") or (query.get("password") or [""])[-1]
    except ValueError:
        return [f"{variable}: not a valid URL"]
    if not password:
        return [f"{variable}: the URL carries no password; production servers need one"]
    if password.lower() in DEFAULT_SERVER_PASSWORDS:
        return [f"{variable}: the password is a well-known default; set a real one"]
    if password == username:
        return [f"{variable}: the password equals the user name; set a real one"]
    return []


def settings_for_log(settings: msgspec.Struct) -> dict[str, object]:
    """Render settings for one log line: secrets masked, passwords in URLs scrubbed."""
    secret_fields = {spec.name for spec in _field_specs(type(settings), "") if spec.secret}
    rendered: dict[str, object] = {}
    for field in msgspec.structs.fields(settings):
        value = getattr(settings, field.name)
        rendered[field.name] = REDACTED if field.name in secret_fields and value else value
    return redact_mapping(rendered)


def _field_specs(cls: type[msgspec.Struct], prefix: str) -> list[_FieldSpec]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [
        _FieldSpec(
            name=field.name,
            env_var=f"{prefix}{field.name.upper()}",
            annotation=hints[field.name],
            required=field.required,
            default=field.default,
            secret=_is_secret(hints[field.name]),
        )
        for field in msgspec.structs.fields(cls)
    ]


def _is_secret(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        core, *metadata = get_args(annotation)
        marked = any(
            isinstance(meta, msgspec.Meta) and (meta.extra or {}).get("secret") is True
            for meta in metadata
        )
        return marked or _is_secret(core)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_secret(arg) for arg in get_args(annotation))
    return False


def _collect_raw_values(
    specs: Sequence[_FieldSpec], prefix: str, environ: Mapping[str, str], problems: list[str]
) -> dict[str, tuple[str, str]]:
    """Map field name to (variable it came from, text), reporting unknown and doubled variables."""
    by_var = {spec.env_var: spec for spec in specs}
    raw: dict[str, tuple[str, str]] = {}
    for var in sorted(v for v in environ if v.startswith(prefix)):
        if var in by_var:
            if f"{var}{_FILE_SUFFIX}" in environ and f"{var}{_FILE_SUFFIX}" not in by_var:
                problems.append(f"{var}: set both directly and as {var}{_FILE_SUFFIX}; keep one")
                continue
            raw[by_var[var].name] = (var, environ[var])
        elif var.endswith(_FILE_SUFFIX) and var.removesuffix(_FILE_SUFFIX) in by_var:
            if var.removesuffix(_FILE_SUFFIX) in environ:
                continue  # reported once, under the direct variable
            text = _read_secret_file(var, environ[var], problems)
            if text is not None:
                raw[by_var[var.removesuffix(_FILE_SUFFIX)].name] = (var, text)
        else:
            problems.append(_unknown_variable(var, by_var))
    return raw


def _read_secret_file(var: str, path: str, problems: list[str]) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"{var}: cannot read {path}: {exc.strerror or type(exc).__name__}")
        return None
    except UnicodeDecodeError:
        problems.append(f"{var}: {path} is not UTF-8 text")
        return None
    # Editors and `echo` add one newline; a secret never ends with one on purpose.
    return text.removesuffix("\n").removesuffix("\r")


def _unknown_variable(var: str, known: Mapping[str, _FieldSpec]) -> str:
    guesses = difflib.get_close_matches(var, list(known), n=1)
    hint = f"; did you mean {guesses[0]}?" if guesses else ""
    return f"{var}: unknown setting{hint}"


def _convert(text: str, annotation: Any) -> object:
    core = _core_type(annotation)
    value: object = text
    # An empty variable is how compose files and .env files say "unset".
    if text == "" and _accepts_none(annotation):
        return None
    if core is bool:
        value = _parse_boolean(text)
    elif core in _SEQUENCE_TYPES or get_origin(core) in _SEQUENCE_TYPES:
        value = _split_list(text)
    elif core is dict or get_origin(core) is dict or _is_struct(core):
        value = msgspec.json.decode(text)
    return msgspec.convert(value, annotation, strict=False, dec_hook=_decode_path)


def _core_type(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` to the type that decides how text is parsed."""
    if get_origin(annotation) is Annotated:
        return _core_type(get_args(annotation)[0])
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _core_type(members[0])
    return annotation


def _accepts_none(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _accepts_none(get_args(annotation)[0])
    return annotation is None or type(None) in get_args(annotation)


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _parse_boolean(text: str) -> bool:
    try:
        return _BOOLEAN_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError("expected a boolean: true/false, yes/no, on/off or 1/0") from None


def _split_list(text: str) -> object:
    if text.lstrip().startswith("["):
        return msgspec.json.decode(text)
    return [item.strip() for item in text.split(",") if item.strip()]


def _decode_path(target: type, value: object) -> object:
    if isinstance(target, type) and issubclass(target, PurePath) and isinstance(value, str):
        return target(value)
    raise NotImplementedError(f"cannot convert to {target!r}")


class ServiceSettings(Protocol):
    """The settings every Airlock HTTP service has, under its own prefix."""

    @property
    def env(self) -> str: ...
    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> str | None: ...
    @property
    def database_url(self) -> str | None: ...
    @property
    def redis_url(self) -> str | None: ...
    @property
    def jwt_secret(self) -> str: ...
    @property
    def tls_cert_file(self) -> Path | None: ...
    @property
    def tls_key_file(self) -> Path | None: ...
    @property
    def tls_terminated_by_proxy(self) -> bool: ...


def json_logs(settings: ServiceSettings) -> bool:
    """JSON log lines unless console output was asked for (the default in development)."""
    return (
        settings.log_format or ("json" if settings.env == "production" else "console")
    ) == "json"


def service_production_problems(settings: ServiceSettings, prefix: str) -> list[str]:
    """What production refuses in a service's common settings (beyond default secrets)."""
    problems = []
    if settings.database_url is None:
        problems.append(f"{prefix}DATABASE_URL: production needs a real PostgreSQL server")
    if settings.redis_url is None:
        problems.append(f"{prefix}REDIS_URL: production needs a real Redis server")
    problems += server_password_problems(f"{prefix}DATABASE_URL", settings.database_url)
    problems += server_password_problems(f"{prefix}REDIS_URL", settings.redis_url)
    if len(settings.jwt_secret) < 32:
        problems.append(f"{prefix}JWT_SECRET: use at least 32 characters")
    return problems
