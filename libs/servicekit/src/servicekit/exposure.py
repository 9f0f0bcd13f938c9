"""How a service's API faces the network: its TLS files, the proxies it trusts, and whether
its own connections to PostgreSQL and Redis are encrypted.

- `serving_problems`: what `serve` refuses before it binds a port. Certificate and key go
  together and must load as a pair; in production one of them is required unless the
  service is told that a proxy in front terminates TLS (``{PREFIX}TLS_TERMINATED_BY_PROXY``).
- `parse_proxies`: ``{PREFIX}TRUSTED_PROXIES``, addresses or CIDR ranges, checked at load.
- `insecure_transport_warnings`: a remote PostgreSQL reached without
  ``sslmode=verify-full``, a remote Redis without ``rediss://``. Production logs them at start
  (a warning, not a refusal: a site may encrypt the path another way, e.g. a VPN).

Messages name variables and files, never a URL (it may carry a password).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from servicekit.settings import ServiceSettings, SettingsError

__all__ = [
    "Network",
    "check_api_start",
    "insecure_transport_warnings",
    "is_local_host",
    "parse_proxies",
    "serving_problems",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOCAL_NAMES: Final = frozenset({"", "localhost"})
_VERIFIED_SSLMODE: Final = "verify-full"


def serving_problems(
    prefix: str,
    *,
    production: bool,
    cert_file: Path | None,
    key_file: Path | None,
    terminated_by_proxy: bool,
) -> list[str]:
    """What is wrong with an API's TLS settings (empty: it may start)."""
    cert, key = f"{prefix}TLS_CERT_FILE", f"{prefix}TLS_KEY_FILE"
    if cert_file is None and key_file is None:
        if production and not terminated_by_proxy:
            return [
                f"{cert}, {key}: production serves HTTPS; set both, or set "
                f"{prefix}TLS_TERMINATED_BY_PROXY=true when a proxy in front terminates TLS"
            ]
        return []
    if cert_file is None or key_file is None:
        return [f"{cert} and {key} go together: set both or neither"]
    problems = [
        f"{variable}: cannot read {path}: {error}"
        for variable, path in ((cert, cert_file), (key, key_file))
        if (error := _unreadable(path)) is not None
    ]
    if problems:
        return problems
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback that gives none: an encrypted key fails here instead of
        # prompting on a terminal nobody watches.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        return [
            f"{cert}, {key}: the files do not load as a certificate (PEM, chain first) and its "
            f"unencrypted private key ({reason})"
        ]
    return []


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def parse_proxies(values: Sequence[str]) -> list[Network]:
    """Trusted proxies as networks (a bare address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR range: {value!r}") from None
    return networks


def is_local_host(host: str | None) -> bool:
    """A unix socket (no host, or a path), localhost, or a loopback address."""
    if host is None or host in _LOCAL_NAMES or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def insecure_transport_warnings(
    prefix: str, database_url: str | None, redis_url: str | None
) -> list[str]:
    """One line per remote server the service would reach without verified TLS."""
    warnings = []
    if database_url is not None and _remote_postgres_without_tls(database_url):
        warnings.append(
            f"{prefix}DATABASE_URL: a remote PostgreSQL without sslmode={_VERIFIED_SSLMODE}; "
            "its traffic (passwords, requests) can be read or altered on the way"
        )
    if redis_url is not None and _remote_redis_without_tls(redis_url):
        warnings.append(
            f"{prefix}REDIS_URL: a remote Redis over redis:// (plain text); use rediss://"
        )
    return warnings


def _remote_postgres_without_tls(url: str) -> bool:
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        # libpq's `host` parameter (a socket folder, or a list of hosts) wins over the netloc.
        hosts = (query.get("host") or [parts.hostname or ""])[-1].split(",")
    except ValueError:
        return False  # not a URL: the connection itself reports it
    if all(is_local_host(host) for host in hosts):
        return False
    return (query.get("sslmode") or [""])[-1] != _VERIFIED_SSLMODE


def _remote_redis_without_tls(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme == "redis" and not is_local_host(host)


def check_api_start(settings: ServiceSettings, prefix: str) -> None:
    """Refuse (SettingsError) to serve an API with unusable or, in production, no TLS files."""
    problems = serving_problems(
        prefix,
        production=settings.env == "production",
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        terminated_by_proxy=settings.tls_terminated_by_proxy,
    )
    if problems:
        raise SettingsError(problems)
