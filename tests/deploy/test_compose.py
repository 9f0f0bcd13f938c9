"""The compose files follow the deployment rules; no Docker engine runs here, so they are read
as YAML. `docker compose config` would check their syntax too; these tests check what it
cannot: secrets only from git-ignored files, servers unpublished, every service limited and
health-checked, and the services' settings valid in production with the secrets
init-secrets.sh makes."""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airlink.endpoint import load_link_encryption
from batchformat import TrustedKeys, load_signing_key
from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from servicekit.settings import load_settings
from servicekit.testing import need_tool
from tests.deploy.deployfiles import (
    COMPOSE_DIR,
    COMPOSE_FILES,
    DOCKERFILES,
    INIT_SECRETS,
    REPO,
    all_compose_services,
    compose_services,
    git_ignores,
    load_compose,
)

SERVICES = list(all_compose_services())
SERVICE_IDS = [f"{path.stem}:{name}" for path, name, _ in SERVICES]
SERVER_IMAGES = ("postgres:", "redis:")
REQUEST_NET = COMPOSE_DIR / "request-net.yml"
RESPONSE_NET = COMPOSE_DIR / "response-net.yml"
SETTINGS: dict[str, type[GatewaySettings] | type[ProcessorSettings]] = {
    "GATEWAY_": GatewaySettings,
    "PROCESSOR_": ProcessorSettings,
}
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]*:[^@\s]+@")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "DATABASE_URL", "REDIS_URL")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _secret_targets(service: dict[str, Any]) -> dict[str, str]:
    """/run/secrets path inside the container -> the secret's name."""
    targets = {}
    for entry in service.get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        targets[target if target.startswith("/") else f"/run/secrets/{target}"] = source
    return targets


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the compose folder) of each bind mount."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source.startswith("."):
            mounts[target] = source
    return mounts


@pytest.mark.parametrize(("path", "name", "service"), SERVICES, ids=SERVICE_IDS)
def test_every_service_restarts_is_health_checked_and_limited(
    path: Path, name: str, service: dict[str, Any]
) -> None:
    assert service.get("restart") == "unless-stopped"
    test = service.get("healthcheck", {}).get("test")
    assert test, f"{path.name}: {name} has no health check"
    assert test[0] in ("CMD", "CMD-SHELL")
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    assert limits.get("cpus"), f"{name}: no cpu limit"
    assert limits.get("memory"), f"{name}: no memory limit"


@pytest.mark.parametrize(("path", "name", "service"), SERVICES, ids=SERVICE_IDS)
def test_images_are_pinned_and_ours_are_built_from_our_dockerfiles(
    path: Path, name: str, service: dict[str, Any]
) -> None:
    image = service["image"]
    repository, _, tag = image.rpartition(":")
    assert repository, image
    assert tag not in ("", "latest"), f"{name}: pin {image} by tag"
    if image.startswith("airlock/"):
        dockerfile = (path.parent / service["build"]["context"]) / service["build"]["dockerfile"]
        assert dockerfile.resolve() in {p.resolve() for p in DOCKERFILES.values()}
        assert repository.removeprefix("airlock/") in DOCKERFILES


SERVERS = [(p, n, s) for p, n, s in SERVICES if s["image"].startswith(SERVER_IMAGES)]


@pytest.mark.parametrize(
    ("path", "name", "service"), SERVERS, ids=[f"{p.stem}:{n}" for p, n, _ in SERVERS]
)
def test_servers_publish_no_port_and_require_a_password(
    path: Path, name: str, service: dict[str, Any]
) -> None:
    assert "ports" not in service, f"{name}: PostgreSQL and Redis ports are never published"
    assert not any(isinstance(n, str) and "edge" in n for n in service.get("networks", []))
    secrets = set(_secret_targets(service).values())
    if service["image"].startswith("postgres:"):
        environment = _environment(service)
        assert "POSTGRES_PASSWORD" not in environment
        secret_path = environment["POSTGRES_PASSWORD_FILE"]
        assert _secret_targets(service)[secret_path] in secrets
    else:
        # redis-server reads its configuration (with `requirepass`) from a secret file.
        config = service["command"][1]
        assert config in _secret_targets(service), f"{name}: requirepass must come from a secret"


@pytest.mark.parametrize(("path", "name", "service"), SERVICES, ids=SERVICE_IDS)
def test_no_secret_value_is_written_in_a_compose_file(
    path: Path, name: str, service: dict[str, Any]
) -> None:
    for key, value in _environment(service).items():
        assert not CREDENTIALS_IN_URL.search(value), f"{name}: {key} holds credentials"
        if any(word in key for word in SECRET_WORDS) and not key.endswith("_FILE"):
            pytest.fail(f"{name}: {key} is set directly; use {key}_FILE and a secret")


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[p.stem for p in COMPOSE_FILES])
def test_secrets_come_from_git_ignored_files_and_are_all_used(path: Path) -> None:
    document = load_compose(path)
    declared = document.get("secrets", {})
    used = {
        source
        for service in document["services"].values()
        for source in _secret_targets(service).values()
    }
    assert used == set(declared), f"{path.name}: secrets used and declared differ"
    for name, secret in declared.items():
        file = Path(secret["file"])
        assert file.parts[0] == "secrets", f"{name}: keep secret files under ./secrets/"
        assert git_ignores(path.parent / file), f"{path.parent / file} is not git-ignored"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[p.stem for p in COMPOSE_FILES])
def test_volumes_are_named_or_read_only_configuration(path: Path) -> None:
    document = load_compose(path)
    named = set(document.get("volumes", {}))
    for name, service in document["services"].items():
        for entry in service.get("volumes", []):
            source, _, *options = entry.split(":")
            if source.startswith("."):
                assert options == ["ro"], f"{name}: bind mount {source} must be read-only"
                host = path.parent / source
                if not {"keys", "secrets"} & set(host.parts):  # made per site by init-secrets.sh
                    assert host.exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    for volume in document.get("volumes", {}).values():
        assert volume.get("name", "").startswith("airlock-"), "give volumes stable names"


@pytest.mark.parametrize(("path", "side"), [(REQUEST_NET, "gateway"), (RESPONSE_NET, "processor")])
def test_the_backup_measures_the_database_volumes_it_mounts_read_only(
    path: Path, side: str
) -> None:
    services = compose_services(path)
    command = services[f"{side}-backup"]["command"]
    watched = dict(
        command[index + 1].split("=", 1)
        for index, word in enumerate(command)
        if word == "--free-space"
    )
    assert set(watched) == {"database", "wal-archive"}
    mounts = {
        entry.split(":")[1]: entry.split(":") for entry in services[f"{side}-backup"]["volumes"]
    }
    database_volumes = {
        entry.split(":")[1]: entry.split(":")[0] for entry in services["postgres"]["volumes"]
    }
    for name, target in watched.items():
        source, _, options = mounts[target]
        assert options == "ro", f"{side}-backup must not be able to write {source}"
        expected = "/var/lib/postgresql/data" if name == "database" else "/var/lib/postgresql"
        assert source == database_volumes[expected], (name, source)


def test_every_airlock_process_runs_in_production_mode() -> None:
    for _, name, service in SERVICES:
        environment = _environment(service)
        for prefix in SETTINGS:
            if any(key.startswith(prefix) for key in environment):
                assert environment[f"{prefix}ENV"] == "production", name


@pytest.fixture(scope="module")
def made_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What init-secrets.sh makes, in a folder of its own."""
    need_tool("openssl", "openssl")
    need_tool("age-keygen", "age")
    root = tmp_path_factory.mktemp("compose")
    subprocess.run(["sh", str(INIT_SECRETS), str(root)], check=True, capture_output=True)
    return root


def _host_path(service: dict[str, Any], document: dict[str, Any], root: Path, value: str) -> str:
    """A container path of the service's environment, as the file init-secrets.sh made."""
    secrets = _secret_targets(service)
    if value in secrets:
        return str(root / document["secrets"][secrets[value]]["file"])
    mounts = _bind_mounts(service)
    if value in mounts:
        return str(root / mounts[value])
    return value


AIRLOCK_SERVICES = [
    (path, name, service)
    for path, name, service in SERVICES
    if any(key.startswith(tuple(SETTINGS)) for key in _environment(service))
]


@pytest.mark.parametrize(
    ("path", "name", "service"),
    AIRLOCK_SERVICES,
    ids=[f"{p.stem}:{n}" for p, n, _ in AIRLOCK_SERVICES],
)
def test_settings_are_valid_in_production_with_the_made_secrets(
    path: Path, name: str, service: dict[str, Any], made_secrets: Path
) -> None:
    document = load_compose(path)
    environment = {
        key: _host_path(service, document, made_secrets, value)
        for key, value in _environment(service).items()
    }
    (prefix, cls), *_ = [(p, c) for p, c in SETTINGS.items() if f"{p}ENV" in environment]
    settings = load_settings(cls, prefix=prefix, environ=environment)  # production checks

    signing_key = load_signing_key(settings.signing_key_path)
    assert signing_key.key_id == settings.network_id
    peers = TrustedKeys.from_directory(settings.peer_keys_path)
    assert list(peers) == [settings.peer_network_id]
    encryption = load_link_encryption(settings, generate_missing=False)  # as production starts
    assert list(encryption.recipients or ()) == [settings.peer_network_id]
    assert list(encryption.decryption_keys) == [settings.network_id]
    if isinstance(settings, GatewaySettings) and settings.tls_cert_file is not None:
        assert settings.tls_key_file is not None
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert_file, settings.tls_key_file
        )


@pytest.mark.parametrize("path", [p for p in COMPOSE_FILES if p.stem.endswith("-net")])
def test_the_made_urls_reach_the_servers_of_the_same_file(path: Path, made_secrets: Path) -> None:
    document = load_compose(path)
    services = document["services"]
    postgres = _environment(services["postgres"])
    database_password = (made_secrets / document["secrets"][
        _secret_targets(services["postgres"])[postgres["POSTGRES_PASSWORD_FILE"]]
    ]["file"]).read_text().strip()  # fmt: skip
    redis_config = services["redis"]["command"][1]
    redis_secret = document["secrets"][_secret_targets(services["redis"])[redis_config]]["file"]
    (requirepass,) = [
        line.split()[1]
        for line in (made_secrets / redis_secret).read_text().splitlines()
        if line.startswith("requirepass ")
    ]
    for service in services.values():
        environment = _environment(service)
        for key, value in environment.items():
            if key.endswith(("DATABASE_URL_FILE", "REDIS_URL_FILE")):
                url = urlsplit(Path(_host_path(service, document, made_secrets, value)).read_text())
                if "DATABASE" in key:
                    assert (url.hostname, url.username, url.password, url.path.strip()) == (
                        "postgres", postgres["POSTGRES_USER"], database_password,
                        "/" + postgres["POSTGRES_DB"],
                    )  # fmt: skip
                else:
                    assert (url.hostname, url.password) == ("redis", requirepass)


def test_the_secrets_folder_is_private_and_the_key_folders_readable(made_secrets: Path) -> None:
    assert (made_secrets / "secrets").stat().st_mode & 0o777 == 0o700
    for folder in (made_secrets / "keys").iterdir():
        assert folder.stat().st_mode & 0o777 == 0o755


def test_init_secrets_never_replaces_a_secret(made_secrets: Path) -> None:
    def files() -> dict[str, bytes]:
        folder = made_secrets / "secrets"
        return {
            str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }

    before = files()
    subprocess.run(["sh", str(INIT_SECRETS), str(made_secrets)], check=True, capture_output=True)
    after = files()
    assert after == before


def test_the_transfer_agent_moves_between_the_drop_zones_of_both_networks() -> None:
    gateway = compose_services(COMPOSE_DIR / "request-net.yml")["gateway-worker"]
    processor = compose_services(COMPOSE_DIR / "response-net.yml")["processor-worker"]
    agent = compose_services(COMPOSE_DIR / "transfer.yml")["transfer-agent"]
    volume_names = {
        **{
            k: v["name"]
            for k, v in load_compose(COMPOSE_DIR / "request-net.yml")["volumes"].items()
        },
        **{
            k: v["name"]
            for k, v in load_compose(COMPOSE_DIR / "response-net.yml")["volumes"].items()
        },
    }
    transfer_volumes = load_compose(COMPOSE_DIR / "transfer.yml")["volumes"]

    def volume_at(service: dict[str, Any], target: str, names: dict[str, str]) -> str:
        (source,) = [e.split(":")[0] for e in service["volumes"] if e.split(":")[1] == target]
        return names[source]

    agent_names = {key: value["name"] for key, value in transfer_volumes.items()}
    assert all(value.get("external") for value in transfer_volumes.values())
    agent_mounts = {
        volume_at(agent, e.split(":")[1], agent_names): e.split(":")[1]
        for e in agent["volumes"]
        if not e.startswith(".")
    }
    gateway_env, processor_env = _environment(gateway), _environment(processor)
    gateway_outbox = volume_at(gateway, gateway_env["GATEWAY_OUTBOX_DIR"], volume_names)
    gateway_inbox = volume_at(gateway, gateway_env["GATEWAY_INBOX_DIR"], volume_names)
    processor_outbox = volume_at(processor, processor_env["PROCESSOR_OUTBOX_DIR"], volume_names)
    processor_inbox = volume_at(processor, processor_env["PROCESSOR_INBOX_DIR"], volume_names)

    from transfer_agent.config import load_config

    config = load_config(REPO / "deploy" / "transfer-agent" / "agent.toml")
    routes = {(str(r.source), str(r.destination)) for r in config.routes}
    assert routes == {
        (agent_mounts[gateway_outbox], agent_mounts[processor_inbox]),
        (agent_mounts[processor_outbox], agent_mounts[gateway_inbox]),
    }
    mounted_keys = {e.split(":")[1] for e in agent["volumes"] if e.startswith(".")}
    assert {str(k) for r in config.routes for k in r.trusted_keys} <= mounted_keys
    assert config.agent.host_port[1] == 8002
