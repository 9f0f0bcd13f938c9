"""The systemd units: a dedicated user, restarts, hardening, secrets as credentials; together
with the .env examples they make a configuration the services accept in production. Checked
with `systemd-analyze verify` where systemd's tools are installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from airlink.endpoint import load_link_encryption
from batchformat import generate_key_pair
from batchformat.crypt import generate_encryption_key_pair
from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from servicekit.settings import load_settings
from servicekit.testing import need_tool
from tests.deploy.deployfiles import (
    DEPLOY,
    SYSTEMD_DIR,
    UNIT_VENV,
    env_entries,
    systemd_verify,
    unit_entries,
    unit_values,
)

UNITS = {
    "airlock-gateway-api.service": "request-gateway serve",
    "airlock-gateway-worker.service": "request-gateway worker",
    "airlock-processor-api.service": "response-processor serve",
    "airlock-processor-worker.service": "response-processor worker",
    "airlock-transfer-agent.service": "transfer-agent run --config /etc/airlock/agent.toml",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
}
SERVICE_SETTINGS: dict[str, tuple[type[GatewaySettings] | type[ProcessorSettings], str, str]] = {
    "gateway": (GatewaySettings, "GATEWAY_", "request-gateway.env.example"),
    "processor": (ProcessorSettings, "PROCESSOR_", "response-processor.env.example"),
}
# Units that run third-party servers, each tested with its own files.
SUPPORT_UNITS = {"airlock-alertmanager.service"}  # tests/deploy/test_monitoring_alertmanager.py


def test_the_unit_files_are_the_five_processes() -> None:
    # The backup units (one-shots started by timers) are checked in test_backup_units.py.
    services = {path.name for path in SYSTEMD_DIR.glob("*.service")}
    assert {name for name in services if not name.endswith("-backup.service")} == (
        set(UNITS) | SUPPORT_UNITS
    )


@pytest.mark.parametrize(("unit", "command"), sorted(UNITS.items()))
def test_each_unit_runs_its_command_as_the_service_user_and_restarts(
    unit: str, command: str
) -> None:
    path = SYSTEMD_DIR / unit
    assert unit_values(path, "Service", "ExecStart") == [UNIT_VENV + command]
    assert unit_values(path, "Service", "User") == ["airlock"]
    assert unit_values(path, "Service", "Restart") == ["on-failure"]
    assert unit_values(path, "Install", "WantedBy") == ["multi-user.target"]
    # The console script the unit runs is one the workspace installs.
    assert (Path(sys.executable).parent / command.split()[0]).exists()


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_each_unit_is_hardened_and_writes_only_data_and_drop_zones(unit: str) -> None:
    path = SYSTEMD_DIR / unit
    for key, value in HARDENING.items():
        assert unit_values(path, "Service", key) == [value], f"{unit}: {key}={value}"
    writable = " ".join(unit_values(path, "Service", "ReadWritePaths")).split()
    assert writable, f"{unit}: ReadWritePaths= for its drop zones"
    assert all(folder.startswith("/srv/airlock/") for folder in writable)


@pytest.mark.parametrize("unit", sorted(u for u in UNITS if "transfer" not in u))
def test_secrets_are_credentials_never_environment_values(unit: str) -> None:
    path = SYSTEMD_DIR / unit
    side = "gateway" if "gateway" in unit else "processor"
    _, prefix, example = SERVICE_SETTINGS[side]
    assert unit_values(path, "Service", "EnvironmentFile") == [f"/etc/airlock/{example[:-8]}"]
    credentials = dict(v.split(":", 1) for v in unit_values(path, "Service", "LoadCredential"))
    assert all(source.startswith("/etc/airlock/credentials/") for source in credentials.values())
    for assignment in unit_values(path, "Service", "Environment"):
        name, _, value = assignment.partition("=")
        assert name.startswith(prefix)
        if name == prefix + "DECRYPTION_KEYS_DIR":
            assert value == "%d", f"{unit}: the decryption keys are read from the credentials"
            continue
        assert value.startswith("%d/"), f"{unit}: {name} must point at a credential"
        assert value.removeprefix("%d/") in credentials
    # The batch decryption identity is a credential too, named as the link reads it.
    assert [name for name in credentials if name.endswith(".agekey")] == [
        ("request-net" if side == "gateway" else "response-net") + ".agekey"
    ]
    names = {a.partition("=")[0] for a in unit_values(path, "Service", "Environment")}
    for secret in ("DATABASE_URL_FILE", "REDIS_URL_FILE", "JWT_SECRET_FILE", "SIGNING_KEY_FILE"):
        assert prefix + secret in names


def _credential_content(name: str, tmp_path: Path) -> bytes:
    """What a site would put in each credential file (a real-looking strong value)."""
    strong = "Vq3x9TfL2pRm8sKdXw4ZJ6yN"
    if name.endswith(".key"):
        private, _ = generate_key_pair(name.removesuffix(".key"), tmp_path / "made-keys")
        return private.read_bytes()
    if name.endswith(".agekey"):
        identity, _ = generate_encryption_key_pair(name.removesuffix(".agekey"), tmp_path / "age")
        return identity.read_bytes()
    contents = {
        "database-url": f"postgresql://airlock:{strong}@db.internal:5432/airlock",
        "redis-url": f"redis://:{strong}@redis.internal:6379/0",
        "jwt-secret": strong * 3,
        "admin-password": strong,
    }
    return contents.get(name, "placeholder").encode()


@pytest.mark.parametrize("unit", sorted(u for u in UNITS if "transfer" not in u))
def test_the_unit_and_the_env_example_pass_the_production_checks(unit: str, tmp_path: Path) -> None:
    path = SYSTEMD_DIR / unit
    cls, prefix, example = SERVICE_SETTINGS["gateway" if "gateway" in unit else "processor"]
    credentials_dir = tmp_path / "credentials"
    credentials_dir.mkdir()
    for value in unit_values(path, "Service", "LoadCredential"):
        name = value.split(":", 1)[0]
        (credentials_dir / name).write_bytes(_credential_content(name, tmp_path))
        (credentials_dir / name).chmod(0o400)  # what systemd gives the service
    environ = {e.name: e.value for e in env_entries(DEPLOY / "env" / example) if not e.commented}
    for assignment in unit_values(path, "Service", "Environment"):
        name, _, value = assignment.partition("=")
        environ[name] = value.replace("%d", str(credentials_dir))  # what systemd does
    settings = load_settings(cls, prefix=prefix, environ=environ)
    assert settings.env == "production"
    # The drop zones the service uses are inside what the unit may write.
    writable = " ".join(unit_values(path, "Service", "ReadWritePaths")).split()
    for folder in (settings.outbox_path, settings.inbox_path):
        assert any(folder.is_relative_to(w) for w in writable), folder
    states = unit_values(path, "Service", "StateDirectory")
    assert [f"/var/lib/{state}" for state in states] == [str(settings.data_dir)]
    # The link starts with the unit's key: its own identity from the credentials, and the
    # peer's public key where install step 4 puts it.
    peer = "response-net" if prefix == "GATEWAY_" else "request-net"
    _, public = generate_encryption_key_pair(peer, tmp_path / "peer-age")
    settings = msgspec.structs.replace(settings, peer_keys_dir=public.parent)
    encryption = load_link_encryption(settings, generate_missing=False)
    assert encryption.describe()["decryption_key_ids"] == [settings.network_id]


def test_the_agents_unit_may_write_every_folder_of_its_routes() -> None:
    from transfer_agent.config import load_config

    path = SYSTEMD_DIR / "airlock-transfer-agent.service"
    writable = " ".join(unit_values(path, "Service", "ReadWritePaths")).split()
    config = load_config(DEPLOY / "transfer-agent" / "agent.toml")
    for route in config.routes:
        for folder in (route.source, route.destination):
            assert any(folder.is_relative_to(w) for w in writable), folder


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    assert systemd_verify(list(UNITS), tmp_path) == "exit 0"


def test_unit_files_have_no_unknown_sections() -> None:
    for unit in UNITS:
        assert set(unit_entries(SYSTEMD_DIR / unit)) == {"Unit", "Service", "Install"}


@pytest.mark.skipif(os.geteuid() != 0, reason="making folders owned by another user needs root")
def test_sysusers_and_tmpfiles_make_the_user_and_the_folders_the_units_need(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    for kind in ("sysusers", "tmpfiles"):
        target = root / "etc" / f"{kind}.d" / "airlock.conf"
        target.parent.mkdir(parents=True)
        shutil.copy(SYSTEMD_DIR / f"airlock.{kind}.conf", target)
    subprocess.run(
        [need_tool("systemd-sysusers", "systemd"), f"--root={root}"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [need_tool("systemd-tmpfiles", "systemd"), f"--root={root}", "--create"],
        check=True,
        capture_output=True,
    )
    passwd = (root / "etc" / "passwd").read_text()
    (line,) = [entry for entry in passwd.splitlines() if entry.startswith("airlock:")]
    uid = int(line.split(":")[2])
    for unit in UNITS:
        for folder in " ".join(
            unit_values(SYSTEMD_DIR / unit, "Service", "ReadWritePaths")
        ).split():
            made = root / folder.lstrip("/")
            assert made.is_dir(), folder
            assert made.stat().st_uid == uid
    assert (root / "etc/airlock/credentials").stat().st_mode & 0o777 == 0o700
