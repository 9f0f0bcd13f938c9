"""Both services refuse, in production, database and Redis URLs without a real password."""

from __future__ import annotations

from pathlib import Path

import pytest

from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from servicekit.settings import SettingsError, load_settings

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
