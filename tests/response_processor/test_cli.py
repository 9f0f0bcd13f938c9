"""The `response-processor` command as operators run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("response-processor"))


def run(
    tmp_path: Path, database_url: str, redis_url: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROCESSOR_")},
        "PROCESSOR_DATA_DIR": str(tmp_path / "data"),
        "PROCESSOR_DATABASE_URL": database_url,
        "PROCESSOR_REDIS_URL": redis_url,
        **env,
    }
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def test_migrate_creates_the_admin_once_and_shows_its_password_once(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    first = run(tmp_path, database_url, redis_url, "migrate")
    assert first.returncode == 0, first.stderr
    assert "Generated password (shown once):" in first.stderr
    password = first.stderr.split("(shown once): ")[1].split()[0]
    assert password not in first.stdout  # the log lines never carry it
    second = run(tmp_path, database_url, redis_url, "migrate")
    assert second.returncode == 0, second.stderr
    assert "shown once" not in second.stderr


def test_create_admin_reads_the_password_from_a_file(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    assert run(tmp_path, database_url, redis_url, "migrate").returncode == 0
    secret = tmp_path / "second-admin"
    secret.write_text("another admin password 123\n")
    made = run(
        tmp_path, database_url, redis_url, "create-admin", "--username", "ops-lead",
        "--password-file", str(secret),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "'ops-lead' created" in made.stderr
    assert "shown once" not in made.stderr


def test_bad_settings_are_refused_with_every_problem_named(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run(
        tmp_path, database_url, redis_url, "migrate",
        PROCESSOR_PORT="not-a-port", PROCESSOR_SURPRISE="1",
    )  # fmt: skip
    assert result.returncode == 2
    assert "PROCESSOR_PORT" in result.stderr
    assert "PROCESSOR_SURPRISE" in result.stderr


def test_production_refuses_development_secrets(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run(tmp_path, database_url, redis_url, "migrate", PROCESSOR_ENV="production")
    assert result.returncode == 2
    assert "PROCESSOR_JWT_SECRET" in result.stderr
    assert "PROCESSOR_SIGNING_KEY_FILE" in result.stderr
