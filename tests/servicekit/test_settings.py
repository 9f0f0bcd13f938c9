from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest

from servicekit.settings import (
    Environment,
    Secret,
    SettingsError,
    load_settings,
    server_password_problems,
    settings_for_log,
    validate_production,
)

PREFIX = "GATEWAY_"


class Settings(msgspec.Struct, kw_only=True):
    database_url: str | None = None
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    workers: int = 1
    debug: bool = False
    ratio: float = 0.5
    request_ttl: timedelta = timedelta(hours=1)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    allowed_ports: list[int] = msgspec.field(default_factory=list)
    data_dir: Path = Path("var")
    log_format: Literal["json", "console"] = "json"
    env: Environment = "development"
    jwt_secret: Secret = "development-only-secret"
    admin_password: Secret | None = None
    signing_enabled: bool = True

    def production_problems(self) -> list[str]:
        return [] if self.signing_enabled else ["GATEWAY_SIGNING_ENABLED: must be on in production"]


class RequiredSettings(msgspec.Struct):
    data_dir: Path
    api_key: Secret


def test_fields_map_to_prefixed_upper_case_variables() -> None:
    settings = load_settings(
        Settings, prefix=PREFIX, environ={"GATEWAY_DATABASE_URL": "postgresql://db/gateway"}
    )
    assert settings.database_url == "postgresql://db/gateway"
    assert settings.port == 8000


def test_values_convert_leniently() -> None:
    environ = {
        "GATEWAY_PORT": "9000",
        "GATEWAY_RATIO": "0.25",
        "GATEWAY_REQUEST_TTL": "90",
        "GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example",
        "GATEWAY_ALLOWED_PORTS": "[80, 443]",
        "GATEWAY_DATA_DIR": "/srv/gateway",
        "GATEWAY_LOG_FORMAT": "console",
    }
    settings = load_settings(Settings, prefix=PREFIX, environ=environ)
    assert settings.port == 9000
    assert settings.ratio == 0.25
    assert settings.request_ttl == timedelta(seconds=90)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.allowed_ports == [80, 443]
    assert settings.data_dir == Path("/srv/gateway")
    assert settings.log_format == "console"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans_accept_the_usual_words(text: str, expected: bool) -> None:
    settings = load_settings(Settings, prefix=PREFIX, environ={"GATEWAY_DEBUG": text})
    assert settings.debug is expected


def test_an_empty_value_clears_an_optional_field() -> None:
    settings = load_settings(Settings, prefix=PREFIX, environ={"GATEWAY_DATABASE_URL": ""})
    assert settings.database_url is None


def test_file_variables_read_secrets_and_strip_one_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt_secret"
    secret_file.write_text("from-a-file\n\n")
    settings = load_settings(
        Settings, prefix=PREFIX, environ={"GATEWAY_JWT_SECRET_FILE": str(secret_file)}
    )
    assert settings.jwt_secret == "from-a-file\n"


def test_setting_a_variable_and_its_file_is_an_error(tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt_secret"
    secret_file.write_text("from-a-file")
    environ = {"GATEWAY_JWT_SECRET": "direct", "GATEWAY_JWT_SECRET_FILE": str(secret_file)}
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, prefix=PREFIX, environ=environ)
    assert caught.value.problems == [
        "GATEWAY_JWT_SECRET: set both directly and as GATEWAY_JWT_SECRET_FILE; keep one"
    ]


def test_an_unreadable_file_is_reported_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, prefix=PREFIX, environ={"GATEWAY_JWT_SECRET_FILE": str(missing)})
    [problem] = caught.value.problems
    assert problem.startswith(f"GATEWAY_JWT_SECRET_FILE: cannot read {missing}")


def test_unknown_prefixed_variables_are_errors_with_a_suggestion() -> None:
    environ = {"GATEWAY_DATABSE_URL": "postgresql://db/x", "OTHER_THING": "ignored"}
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, prefix=PREFIX, environ=environ)
    assert caught.value.problems == [
        "GATEWAY_DATABSE_URL: unknown setting; did you mean GATEWAY_DATABASE_URL?"
    ]


def test_every_problem_is_reported_at_once() -> None:
    environ = {
        "GATEWAY_PORT": "0",
        "GATEWAY_WORKERS": "many",
        "GATEWAY_DEBUG": "perhaps",
        "GATEWAY_ALLOWED_PORTS": "80,http",
        "GATEWAY_LOG_FORMAT": "xml",
        "GATEWAY_TYPO": "1",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, prefix=PREFIX, environ=environ)
    problems = caught.value.problems
    assert len(problems) == 6
    assert "GATEWAY_PORT: Expected `int` >= 1" in problems
    assert "GATEWAY_WORKERS: Expected `int`, got `str`" in problems
    assert any(p.startswith("GATEWAY_DEBUG: expected a boolean") for p in problems)
    assert "GATEWAY_ALLOWED_PORTS: Expected `int`, got `str` - at `$[1]`" in problems
    assert all(problem in str(caught.value) for problem in problems)


def test_missing_required_fields_are_reported() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(RequiredSettings, prefix="APP_", environ={})
    assert caught.value.problems == [
        "APP_DATA_DIR: required but not set (or set APP_DATA_DIR_FILE)",
        "APP_API_KEY: required but not set (or set APP_API_KEY_FILE)",
    ]


def test_errors_never_repeat_a_value() -> None:
    environ = {"GATEWAY_JWT_SECRETT": "hunter2-very-secret", "GATEWAY_PORT": "hunter2-port"}
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, prefix=PREFIX, environ=environ)
    assert "hunter2" not in str(caught.value)


def test_cross_field_checks_of_the_struct_are_reported() -> None:
    class Ranged(msgspec.Struct):
        low: int = 0
        high: int = 10

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ValueError("low must not exceed high")

    with pytest.raises(SettingsError, match="Ranged: low must not exceed high"):
        load_settings(Ranged, prefix="R_", environ={"R_LOW": "11"})


def test_development_accepts_default_secrets() -> None:
    settings = load_settings(Settings, prefix=PREFIX, environ={})
    assert settings.jwt_secret == "development-only-secret"


def test_production_refuses_default_and_empty_secrets_and_the_structs_own_problems() -> None:
    environ = {
        "GATEWAY_ENV": "production",
        "GATEWAY_ADMIN_PASSWORD": "",
        "GATEWAY_SIGNING_ENABLED": "false",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, prefix=PREFIX, environ=environ)
    assert caught.value.problems == [
        "GATEWAY_JWT_SECRET: still the development default; set a real secret",
        "GATEWAY_ADMIN_PASSWORD: must be set in production",
        "GATEWAY_SIGNING_ENABLED: must be on in production",
    ]


def test_production_accepts_real_secrets() -> None:
    environ = {
        "GATEWAY_ENV": "production",
        "GATEWAY_JWT_SECRET": "a-real-secret",
        "GATEWAY_ADMIN_PASSWORD": "a-real-password",
    }
    settings = load_settings(Settings, prefix=PREFIX, environ=environ)
    validate_production(settings, prefix=PREFIX)
    assert settings.env == "production"


def test_settings_for_log_masks_secrets_and_url_passwords() -> None:
    settings = Settings(
        database_url="postgresql://gateway:s3cr3t@db/gateway",
        jwt_secret="a-real-secret",
        admin_password=None,
        data_dir=Path("/srv"),
    )
    rendered = settings_for_log(settings)
    assert rendered["jwt_secret"] == "[REDACTED]"
    assert rendered["admin_password"] is None
    assert rendered["database_url"] == "postgresql://gateway:***@db/gateway"
    assert rendered["data_dir"] == "/srv"
    assert rendered["port"] == 8000


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://gateway:Vq3x9TfL2pRm8sKd@db:5432/gateway",
        "postgresql://gateway@db/gateway?password=Vq3x9TfL2pRm8sKd",
        "redis://:Vq3x9TfL2pRm8sKd@redis:6379/0",
        "rediss://default:Vq3x9TfL2pRm8sKd@redis:6380/1",
        "unix:///run/redis/redis.sock?password=Vq3x9TfL2pRm8sKd&db=2",
    ],
)
def test_server_urls_with_a_real_password_pass(url: str) -> None:
    assert server_password_problems("GATEWAY_DATABASE_URL", url) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://gateway@db:5432/gateway",
        "postgresql://gateway:@db:5432/gateway",
        "redis://redis:6379/0",
        "unix:///run/redis/redis.sock?db=2",
    ],
)
def test_server_urls_without_a_password_are_refused(url: str) -> None:
    assert server_password_problems("GATEWAY_REDIS_URL", url) == [
        "GATEWAY_REDIS_URL: the URL carries no password; production servers need one"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:postgres@db/gateway",
        "postgresql://gateway:PASSWORD@db/gateway",
        "postgresql://gateway:airlock@db/gateway",
        "postgresql://gateway@db/gateway?password=changeme",
        "redis://:redis@redis:6379/0",
        "redis://default:change%2Dme@redis:6379/0",
    ],
)
def test_server_urls_with_a_default_password_are_refused(url: str) -> None:
    assert server_password_problems("GATEWAY_DATABASE_URL", url) == [
        "GATEWAY_DATABASE_URL: the password is a well-known default; set a real one"
    ]


def test_a_password_equal_to_the_user_name_is_refused() -> None:
    assert server_password_problems("X_DATABASE_URL", "postgresql://gw:gw@db/gw") == [
        "X_DATABASE_URL: the password equals the user name; set a real one"
    ]


def test_no_server_url_is_left_to_the_callers_own_check() -> None:
    assert server_password_problems("X_REDIS_URL", None) == []


def test_server_password_problems_never_repeat_the_url() -> None:
    url = "postgresql://admin:admin@db.internal.example:5432/secretdb"
    (problem,) = server_password_problems("X_DATABASE_URL", url)
    assert "admin" not in problem.removeprefix("X_DATABASE_URL")
    assert "db.internal" not in problem
