# The request gateway: `request-gateway serve` (the users' HTTPS API) by default; the link
# worker runs from the same image with the command `worker` (deploy/compose/request-net.yml).
# Build from the repository root:
#   docker build -f deploy/docker/request-gateway.Dockerfile -t airlock/request-gateway:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the locked dependencies and our packages in one virtual environment ---------
FROM ${PYTHON_IMAGE} AS builder
# Behind a TLS-inspecting proxy the build is handed the site's CA bundle as the secret
# `build-ca` (`--secret id=build-ca,src=/etc/ssl/certs/ca-certificates.crt`; make images
# does it with AIRLOCK_BUILD_CA): pip and uv trust it while they download, and it is mounted
# for that one step only, never stored in a layer. Without the secret they use their own.
# The uv that wrote uv.lock; a newer one would read it too, an older one might not.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && python -m pip install --no-cache-dir --disable-pip-version-check "uv==0.13.9"
ENV UV_PROJECT_ENVIRONMENT=/opt/airlock/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# Third-party dependencies first: this layer changes only when the lock file does. Faker
# (through Litestar's polyfactory) makes OpenAPI examples, which no service asks for: 25 MB
# left out (docs/deployment.md, "What each image holds").
ENV AIRLOCK_LEAVE_OUT="--no-install-package faker --no-install-package polyfactory"
COPY pyproject.toml uv.lock ./
COPY libs/authkit/pyproject.toml libs/authkit/
COPY libs/batchformat/pyproject.toml libs/batchformat/
COPY libs/link/pyproject.toml libs/link/
COPY libs/servicekit/pyproject.toml libs/servicekit/
COPY services/request-gateway/pyproject.toml services/request-gateway/
COPY services/response-processor/pyproject.toml services/response-processor/
COPY services/transfer-agent/pyproject.toml services/transfer-agent/
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export SSL_CERT_FILE=/run/secrets/build-ca; fi \
 && uv sync --frozen --no-dev --no-install-workspace $AIRLOCK_LEAVE_OUT --package request-gateway
# Then our own packages, installed as wheels (not linked to /src, which is left behind).
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export SSL_CERT_FILE=/run/secrets/build-ca; fi \
 && uv sync --frozen --no-dev --no-editable $AIRLOCK_LEAVE_OUT --package request-gateway

# ---- runtime: the environment, the age command, a non-root user, nothing else ----------
FROM ${PYTHON_IMAGE} AS runtime
ARG AIRLOCK_UID=10001
# Batch bodies of 8 MiB or more are encrypted and decrypted by the `age` command, Debian's
# package (batchformat.agestream): from the base image's Debian mirror, its lists not kept.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends age \
 && rm -rf /var/lib/apt/lists/*
# The drop zones are created here, owned by the service user, so that named volumes mounted
# on them start with that owner. inbox/archive too: the transfer agent checks at start that
# the archive of applied batches exists (its destination_archive).
RUN groupadd --system --gid "${AIRLOCK_UID}" airlock \
 && useradd --system --uid "${AIRLOCK_UID}" --gid airlock --home-dir /var/lib/airlock \
        --no-create-home --shell /usr/sbin/nologin airlock \
 && install -d -o airlock -g airlock -m 0750 \
        /var/lib/airlock /var/lib/airlock/outbox /var/lib/airlock/inbox \
        /var/lib/airlock/inbox/archive
COPY --from=builder /opt/airlock/venv /opt/airlock/venv
ENV VIRTUAL_ENV=/opt/airlock/venv \
    PATH=/opt/airlock/venv/bin:$PATH \
    PYTHONPATH=/opt/airlock/venv/lib/python3.11/site-packages \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_DATA_DIR=/var/lib/airlock \
    GATEWAY_HOST=0.0.0.0 \
    AIRLOCK_HEALTHCHECK_URL=http://127.0.0.1:8000/health/live
WORKDIR /var/lib/airlock
USER airlock:airlock
# 8000: the API (`serve`); 8010: the worker's /health and /metrics (`worker`).
EXPOSE 8000 8010
# No curl in a slim image: Python asks. The URL comes from the environment, so the worker
# (port 8010) and an HTTPS API (GATEWAY_TLS_*_FILE) set their own; the certificate is not
# checked because the name is 127.0.0.1 and only liveness is asked.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as r; r.urlopen(os.environ['AIRLOCK_HEALTHCHECK_URL'], timeout=4, context=ssl._create_unverified_context())"]
ENTRYPOINT ["request-gateway"]
CMD ["serve"]
