"""servicekit.exposure: what an API refuses to serve with, and which transports it warns of."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicekit.exposure import insecure_transport_warnings, parse_proxies, serving_problems
from tests.servicekit.certificates import make_server_certificate

PREFIX = "SVC_"


def problems(
    cert: Path | None, key: Path | None, *, production: bool = False, by_proxy: bool = False
) -> list[str]:
    return serving_problems(
        PREFIX, production=production, cert_file=cert, key_file=key, terminated_by_proxy=by_proxy
    )


def test_development_serves_plain_http_without_files() -> None:
    assert problems(None, None) == []


def test_production_needs_the_files_or_a_proxy_that_terminates_tls() -> None:
    assert problems(None, None, production=True) == [
        "SVC_TLS_CERT_FILE, SVC_TLS_KEY_FILE: production serves HTTPS; set both, or set "
        "SVC_TLS_TERMINATED_BY_PROXY=true when a proxy in front terminates TLS"
    ]
    assert problems(None, None, production=True, by_proxy=True) == []


def test_a_matching_certificate_and_key_pass(tmp_path: Path) -> None:
    made = make_server_certificate(tmp_path)
    assert problems(made.cert_file, made.key_file, production=True) == []


def test_certificate_and_key_go_together(tmp_path: Path) -> None:
    made = make_server_certificate(tmp_path)
    assert problems(made.cert_file, None) == [
        "SVC_TLS_CERT_FILE and SVC_TLS_KEY_FILE go together: set both or neither"
    ]


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    made = make_server_certificate(tmp_path)
    missing = tmp_path / "absent.pem"
    assert problems(missing, made.key_file) == [
        f"SVC_TLS_CERT_FILE: cannot read {missing}: No such file or directory"
    ]


def test_a_key_of_another_certificate_is_refused_without_its_contents(tmp_path: Path) -> None:
    one, other = make_server_certificate(tmp_path / "one"), make_server_certificate(tmp_path / "b")
    [problem] = problems(one.cert_file, other.key_file)
    assert problem.startswith("SVC_TLS_CERT_FILE, SVC_TLS_KEY_FILE: the files do not load")
    assert "PRIVATE KEY" not in problem


def test_an_encrypted_key_is_refused_instead_of_prompting(tmp_path: Path) -> None:
    made = make_server_certificate(tmp_path, key_password=b"a key password")
    [problem] = problems(made.cert_file, made.key_file)
    assert "unencrypted private key" in problem
    assert "a key password" not in problem


def test_trusted_proxies_are_addresses_or_ranges() -> None:
    assert [str(n) for n in parse_proxies(["10.1.2.3", "10.0.0.0/8 ", "fd00::/8"])] == [
        "10.1.2.3/32",
        "10.0.0.0/8",
        "fd00::/8",
    ]
    with pytest.raises(ValueError, match=r"not an IP address or CIDR range: 'proxy\.local'"):
        parse_proxies(["proxy.local"])


@pytest.mark.parametrize(
    ("database_url", "warned"),
    [
        ("postgresql://app:pw@db.internal:5432/app", True),
        ("postgresql://app:pw@db.internal:5432/app?sslmode=require", True),  # no verification
        ("postgresql://app:pw@db.internal:5432/app?sslmode=verify-full", False),
        ("postgresql://app:pw@127.0.0.1:5432/app", False),
        ("postgresql://app:pw@localhost/app", False),
        ("postgresql://app:pw@[::1]/app", False),
        ("postgresql://app@/app?host=/run/postgresql", False),  # a unix socket
        ("postgresql://app@localhost/app?host=db.internal", True),  # libpq's host wins
    ],
)
def test_a_remote_postgresql_without_verified_tls_is_warned_of(
    database_url: str, warned: bool
) -> None:
    warnings = insecure_transport_warnings(PREFIX, database_url, None)
    assert bool(warnings) is warned
    assert all(w.startswith("SVC_DATABASE_URL: ") and "pw" not in w for w in warnings)


@pytest.mark.parametrize(
    ("redis_url", "warned"),
    [
        ("redis://:pw@cache.internal:6379/0", True),
        ("rediss://:pw@cache.internal:6380/0", False),
        ("redis://:pw@127.0.0.1:6379/0", False),
        ("unix:///run/redis/redis.sock", False),
    ],
)
def test_a_remote_redis_without_tls_is_warned_of(redis_url: str, warned: bool) -> None:
    warnings = insecure_transport_warnings(PREFIX, None, redis_url)
    assert bool(warnings) is warned
    assert all(w.startswith("SVC_REDIS_URL: ") and "pw" not in w for w in warnings)
