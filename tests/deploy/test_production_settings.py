"""Both services refuse, in production, database and Redis URLs without a real password, and
`serve` without TLS; they warn of remote servers reached without TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from servicekit.settings import SettingsError, load_settings
from tests.servicekit.certificates import make_server_certificate

STRONG = "Vq3x9TfL2pRm8sKdXw4Z"
ServiceSettings = type[GatewaySettings] | type[ProcessorSettings]
SERVICES: list[tuple[ServiceSettings, str]] = [
    (GatewaySettings, "GATEWAY_"),
    (ProcessorSettings, "PROCESSOR_"),
]


def production_environ(prefix: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A production environment that passes every check; `overrides` replace variables."""
    environ = {
        f"{prefix}ENV": "production",
        f"{prefix}DATA_DIR": str(tmp_path),
        f"{prefix}JWT_SECRET": "j" * 48,
        f"{prefix}SIGNING_KEY_FILE": str(tmp_path / "keys" / "net.key"),
        f"{prefix}DATABASE_URL": f"postgresql://airlock_app:{STRONG}@postgres:5432/app",
        f"{prefix}REDIS_URL": f"redis://:{STRONG}@redis:6379/0",
    }
    environ.update({f"{prefix}{name}": value for name, value in overrides.items()})
    return environ


@pytest.mark.parametrize(("cls", "prefix"), SERVICES)
def test_production_accepts_servers_with_real_passwords(
    cls: ServiceSettings, prefix: str, tmp_path: Path
) -> None:
    settings = load_settings(cls, prefix=prefix, environ=production_environ(prefix, tmp_path))
    assert settings.env == "production"


@pytest.mark.parametrize(("cls", "prefix"), SERVICES)
def test_production_refuses_default_database_and_redis_passwords(
    cls: ServiceSettings, prefix: str, tmp_path: Path
) -> None:
    environ = production_environ(
        prefix,
        tmp_path,
        DATABASE_URL="postgresql://postgres:postgres@postgres:5432/app",
        REDIS_URL="redis://redis:6379/0",
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(cls, prefix=prefix, environ=environ)
    assert caught.value.problems == [
        f"{prefix}DATABASE_URL: the password is a well-known default; set a real one",
        f"{prefix}REDIS_URL: the URL carries no password; production servers need one",
    ]
    assert "postgres:postgres" not in str(caught.value)


@pytest.mark.parametrize(("cls", "prefix"), SERVICES)
def test_url_files_are_checked_like_urls(cls: ServiceSettings, prefix: str, tmp_path: Path) -> None:
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql://airlock:changeme@postgres/app\n")
    environ = production_environ(prefix, tmp_path)
    del environ[f"{prefix}DATABASE_URL"]
    environ[f"{prefix}DATABASE_URL_FILE"] = str(url_file)
    with pytest.raises(SettingsError) as caught:
        load_settings(cls, prefix=prefix, environ=environ)
    assert caught.value.problems == [
        f"{prefix}DATABASE_URL: the password is a well-known default; set a real one"
    ]


@pytest.mark.parametrize(("cls", "prefix"), SERVICES)
def test_development_keeps_accepting_passwordless_servers(
    cls: ServiceSettings, prefix: str
) -> None:
    environ = {f"{prefix}DATABASE_URL": "postgresql://postgres@localhost/app"}
    load_settings(cls, prefix=prefix, environ=environ)


CLIS = {
    "GATEWAY_": Path(sys.executable).with_name("request-gateway"),
    "PROCESSOR_": Path(sys.executable).with_name("response-processor"),
}


def run_serve(prefix: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`serve` as a process of its own, with only `environ`'s settings of this service."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    return subprocess.run(
        [str(CLIS[prefix]), "serve"],
        env={**inherited, **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("prefix", list(CLIS))
def test_production_serve_refuses_to_start_without_tls_files(prefix: str, tmp_path: Path) -> None:
    result = run_serve(prefix, production_environ(prefix, tmp_path))
    assert result.returncode == 2, result.stderr
    assert f"{prefix}TLS_CERT_FILE, {prefix}TLS_KEY_FILE: production serves HTTPS" in result.stderr
    assert f"{prefix}TLS_TERMINATED_BY_PROXY=true" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("prefix", list(CLIS))
def test_serve_refuses_a_certificate_without_its_key(prefix: str, tmp_path: Path) -> None:
    made = make_server_certificate(tmp_path / "tls")
    other = make_server_certificate(tmp_path / "other")
    environ = production_environ(
        prefix, tmp_path, TLS_CERT_FILE=str(made.cert_file), TLS_KEY_FILE=str(other.key_file)
    )
    result = run_serve(prefix, environ)
    assert result.returncode == 2, result.stderr
    assert "the files do not load as a certificate" in result.stderr


@pytest.mark.parametrize("prefix", list(CLIS))
def test_production_warns_of_remote_servers_reached_without_tls(
    prefix: str, tmp_path: Path
) -> None:
    plain = run_serve(prefix, production_environ(prefix, tmp_path))
    verified = run_serve(
        prefix,
        production_environ(
            prefix,
            tmp_path,
            DATABASE_URL=f"postgresql://airlock_app:{STRONG}@postgres:5432/app?sslmode=verify-full",
            REDIS_URL=f"rediss://:{STRONG}@redis:6380/0",
        ),
    )
    warnings = [line for line in plain.stdout.splitlines() if "insecure_transport" in line]
    assert len(warnings) == 2, plain.stdout + plain.stderr
    assert f"{prefix}DATABASE_URL: a remote PostgreSQL without sslmode=verify-full" in warnings[0]
    assert f"{prefix}REDIS_URL: a remote Redis over redis://" in warnings[1]
    assert all('"level":"warning"' in line for line in warnings)
    assert STRONG not in plain.stdout + plain.stderr
    assert "insecure_transport" not in verified.stdout + verified.stderr


@pytest.mark.parametrize(("cls", "prefix"), SERVICES)
def test_bad_exposure_settings_are_refused_at_load(cls: ServiceSettings, prefix: str) -> None:
    with pytest.raises(SettingsError, match=f"{prefix}TRUSTED_PROXIES: not an IP address"):
        load_settings(cls, prefix=prefix, environ={f"{prefix}TRUSTED_PROXIES": "proxy.local"})
    same_port = {f"{prefix}PORT": "9000", f"{prefix}OPS_PORT": "9000"}
    with pytest.raises(SettingsError, match=f"{prefix}OPS_PORT: must differ from {prefix}PORT"):
        load_settings(cls, prefix=prefix, environ=same_port)
