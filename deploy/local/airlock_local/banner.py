"""What the demo hands to its user once it is ready: credentials, URLs, a curl session."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from airlock_local.layout import DemoLayout
from airlock_local.provisioning import write_private_file
from airlock_local.seeding import ADMIN_USERNAME, USER_USERNAME, Seeded
from airlock_local.settings import DemoSettings

LOCALHOST: Final = "http://127.0.0.1"
_JSON_FIELD: Final = "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"{}\"])'"


@dataclass(frozen=True, slots=True)
class Urls:
    """Where each process answers."""

    gateway: str
    processor: str
    gateway_ops: str
    processor_ops: str
    agent: str
    gateway_worker: str
    processor_worker: str

    @classmethod
    def of(cls, settings: DemoSettings) -> Urls:
        """The local URLs for the configured ports."""
        return cls(
            gateway=f"{LOCALHOST}:{settings.gateway_port}",
            processor=f"{LOCALHOST}:{settings.processor_port}",
            gateway_ops=f"{LOCALHOST}:{settings.gateway_ops_port}",
            processor_ops=f"{LOCALHOST}:{settings.processor_ops_port}",
            agent=f"{LOCALHOST}:{settings.agent_port}",
            gateway_worker=f"{LOCALHOST}:{settings.gateway_worker_port}",
            processor_worker=f"{LOCALHOST}:{settings.processor_worker_port}",
        )


def write_credentials(layout: DemoLayout, seeded: Seeded, urls: Urls) -> None:
    """`credentials.json` (mode 600): passwords that work as written, and the URLs."""
    document = {
        "admin": {"username": ADMIN_USERNAME, "password": seeded.admin_password},
        "user": {"username": USER_USERNAME, "password": seeded.user_password},
        "urls": {"gateway": urls.gateway, "processor": urls.processor, "agent": urls.agent},
    }
    write_private_file(layout.credentials, json.dumps(document, indent=2) + "\n")


def curl_session(urls: Urls, seeded: Seeded) -> str:
    """Sign in on the gateway, submit an echo and a search, wait for their answers."""
    login = shlex.quote(json.dumps({"username": USER_USERNAME, "password": seeded.user_password}))
    echo = shlex.quote(json.dumps({"type": "echo", "payload": {"hello": "across the air gap"}}))
    search = shlex.quote(
        json.dumps({"type": "documents.search", "payload": {"query": "signature", "limit": 3}})
    )
    return f"""\
GW={urls.gateway}/api/v1
# Sign in as the demo user (the user was created on the processor and synced over the link)
TOKEN=$(curl -sf "$GW/auth/login" -H 'Content-Type: application/json' \\
  -d {login} | {_JSON_FIELD.format("access_token")})
# Wait for a request's final status: queued -> exported -> delivered -> completed
poll() {{
  for _ in $(seq 60); do
    R=$(curl -sf "$GW/requests/$1" -H "Authorization: Bearer $TOKEN")
    case "$R" in *'"status":"queued"'*|*'"status":"exported"'*|*'"status":"delivered"'*) sleep 1;;
      *) break;; esac
  done
  echo "$R" | python3 -m json.tool --no-ensure-ascii
}}
# An echo request: it crosses to the response network and its answer comes back
ID=$(curl -sf "$GW/requests" -H "Authorization: Bearer $TOKEN" \\
  -H 'Content-Type: application/json' -d {echo} | {_JSON_FIELD.format("id")})
poll "$ID"
# A full-text search over the document collection loaded on the response network
ID=$(curl -sf "$GW/requests" -H "Authorization: Bearer $TOKEN" \\
  -H 'Content-Type: application/json' -d {search} | {_JSON_FIELD.format("id")})
poll "$ID"
"""


def write_try_it(layout: DemoLayout, session: str) -> None:
    """The curl session as a script (it holds the user's password: owner only)."""
    script = f"#!/usr/bin/env bash\n# Written by `make demo`.\nset -euo pipefail\n{session}"
    write_private_file(layout.try_it, script, mode=0o700)


def banner(layout: DemoLayout, seeded: Seeded, urls: Urls, session: str, ready_s: float) -> str:
    """The text printed once everything is up."""
    where = _shown(layout)
    return f"""
================================================================================
 Airlock is running (ready in {ready_s:.0f} s). Ctrl-C stops everything.

 gateway API       {urls.gateway}   OpenAPI {urls.gateway}/schema
                   {urls.gateway_ops}/health   {urls.gateway_ops}/metrics
 user portal       {urls.gateway}/portal   (sign in as the user below)
 processor API     {urls.processor}   OpenAPI {urls.processor}/schema
                   {urls.processor_ops}/health   {urls.processor_ops}/metrics
 operator console  {urls.processor}/console   (sign in as the admin below)
 transfer agent    {urls.agent}/health   {urls.agent}/metrics
 gateway worker    {urls.gateway_worker}/health   {urls.gateway_worker}/metrics
 processor worker  {urls.processor_worker}/health   {urls.processor_worker}/metrics

 admin on the processor  {ADMIN_USERNAME} / {seeded.admin_password}
 user on the gateway     {USER_USERNAME} / {seeded.user_password}
 (saved in {where}/credentials.json; logs in {where}/logs/)

 Try it: paste this in another terminal, or run `bash {where}/try-it.sh`
--------------------------------------------------------------------------------
{session.rstrip()}
================================================================================
"""


def _shown(layout: DemoLayout) -> str:
    """The data folder as the user would type it: relative when under the current folder."""
    try:
        return str(layout.root.relative_to(Path.cwd()))
    except ValueError:
        return str(layout.root)
