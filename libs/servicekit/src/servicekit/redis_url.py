"""Redis URLs, TCP or unix socket, turned into the keyword arguments clients want.

redis-py reads ``redis://``, ``rediss://`` and ``unix://`` URLs itself
(``redis.asyncio.Redis.from_url``), but arq's ``RedisSettings`` takes separate fields and
no unix socket URL, so both get their arguments from one parse:

    address = parse_redis_url(settings.redis_url)
    RedisSettings(**address.arq_kwargs())
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

__all__ = ["RedisAddress", "parse_redis_url"]

_SCHEMES = ("redis", "rediss", "unix")


class RedisAddress(msgspec.Struct, frozen=True):
    """Where a Redis server is and how to log in to it."""

    host: str = "localhost"
    port: int = 6379
    unix_socket_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None  # `?ssl_ca_certs=/path`: a private CA; else the system's

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` / ``redis.asyncio.Redis``."""
        if self.unix_socket_path is not None:
            return {
                "unix_socket_path": self.unix_socket_path,
                "db": self.db,
                "username": self.username,
                "password": self.password,
            }
        return {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            **self._tls_kwargs(),
        }

    def arq_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``arq.connections.RedisSettings``."""
        return {
            "host": self.host,
            "port": self.port,
            "unix_socket_path": self.unix_socket_path,
            "database": self.db,
            "username": self.username,
            "password": self.password,
            **self._tls_kwargs(),
        }

    def _tls_kwargs(self) -> dict[str, Any]:
        # redis-py 5 and arq check the certificate but not, by default, that it names the
        # host: any certificate from a trusted CA would do. rediss:// checks both.
        if not self.ssl:
            return {"ssl": False}
        return {
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_ca_certs": self.ssl_ca_certs,
        }


def parse_redis_url(url: str) -> RedisAddress:
    """Parse ``redis://``, ``rediss://`` or ``unix://`` URLs, with ``db`` in the path or query."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}; use one of {_SCHEMES}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else query.get("password")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// Redis URL needs a socket path")
        return RedisAddress(
            unix_socket_path=unquote(parts.path),
            db=int(query.get("db", "0")),
            username=username,
            password=password,
        )
    path_db = parts.path.strip("/")
    return RedisAddress(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        db=int(path_db or query.get("db", "0")),
        username=username,
        password=password,
        ssl=parts.scheme == "rediss",
        ssl_ca_certs=query.get("ssl_ca_certs"),
    )
