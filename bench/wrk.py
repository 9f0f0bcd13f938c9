"""HTTP load with wrk (the Debian package), read back as typed figures instead of wrk's text.

`run_wrk` runs wrk once (after an optional warm-up run whose figures are dropped) with a
Lua script whose `done()` hook prints one JSON line: requests, duration, latency
percentiles, wrk's error counters and, per thread, a count of each HTTP status seen.

Per-request variation: pass `requests=[WrkRequest(...), ...]`. The entries go to a data
file that every wrk thread loads in `init()` and pre-formats once; `request()` then hands
them out round-robin, each thread starting at its own offset (thread k of T at entry
k * len // T). Use it for many users each with their own token, or reads of many ids:

    tokens = [...]; ids = [...]
    run_wrk(
        "http://127.0.0.1:8000",
        duration_s=20,
        requests=[
            WrkRequest("GET", f"/api/v1/requests/{i}", {"Authorization": f"Bearer {t}"})
            for i, t in zip(ids, itertools.cycle(tokens))
        ],
    )

Any other behaviour: `lua_script=` is Lua source of wrk's script API (`init`, `request`,
`response`, ...; see wrk's SCRIPTING). It must not define `done()`, which this module adds;
a `setup()` or `response()` it defines is kept and called by this module's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

RESULT_MARKER: Final = "WRK_RESULT_JSON "
INSTALL_HINT: Final = "install it with `apt-get install wrk` (Debian package)"
_RUN_GRACE_S: Final = 30  # wrk stops on its own after -d; this only catches a hung wrk

# Round-robin over pre-formatted requests loaded from a data file: one line per request,
# tab-separated fields METHOD, PATH, BODY, then header name/value pairs; each field with
# %, TAB, CR and LF percent-encoded. An empty BODY sends none. @NAME@ are filled in.
_REQUESTS_LUA: Final = r"""
local data_file = @DATA_FILE@
local thread_count = @THREADS@
local next_thread_id = 0
function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local function decode(field)
  return (field:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local formatted = {}
local position = 1
function init(args)
  for line in io.lines(data_file) do
    local fields = {}
    for value in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = decode(value) end
    local headers = {}
    for i = 4, #fields - 1, 2 do headers[fields[i]] = fields[i + 1] end
    if headers["Host"] == nil then headers["Host"] = wrk.headers["Host"] end
    local body = fields[3] ~= "" and fields[3] or nil
    formatted[#formatted + 1] = wrk.format(fields[1], fields[2], headers, body)
  end
  if #formatted == 0 then error("no requests in " .. data_file) end
  position = math.floor((thread_id or 0) * #formatted / thread_count) + 1
end

function request()
  local chosen = formatted[position]
  position = position % #formatted + 1
  return chosen
end
"""

# Appended to every script. setup() keeps each thread to read its status counts in done(),
# which runs in wrk's main Lua state once every thread has finished.
_RESULT_LUA: Final = r"""
local user_setup = setup
local user_response = response
local counted_threads = {}
status_counts = {}

function setup(thread)
  counted_threads[#counted_threads + 1] = thread
  if user_setup ~= nil then user_setup(thread) end
end

function response(status, headers, body)
  status_counts[status] = (status_counts[status] or 0) + 1
  if user_response ~= nil then user_response(status, headers, body) end
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(counted_threads) do
    for status, count in pairs(thread:get("status_counts") or {}) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local statuses = {}
  for status, count in pairs(totals) do
    statuses[#statuses + 1] = string.format('"%d":%d', status, count)
  end
  local percentiles = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    percentiles[#percentiles + 1] = string.format('"%g":%d', p, latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    '@MARKER@{"duration_us":%d,"requests":%d,"bytes":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":{%s}},'
    .. '"statuses":{%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(percentiles, ","),
    table.concat(statuses, ",")))
end
"""


class WrkMissingError(RuntimeError):
    """wrk is not installed and could not be installed."""


class WrkFailedError(RuntimeError):
    """wrk exited with an error or printed no result."""


@dataclass(frozen=True)
class WrkRequest:
    """One request of a round-robin list: the URL's scheme, host and port, this path."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None  # an empty body is sent as none


class WrkErrors(msgspec.Struct, frozen=True):
    """wrk's error counters; `status` counts responses with a status of 400 or more."""

    connect: int
    read: int
    write: int
    status: int
    timeout: int

    @property
    def total(self) -> int:
        """Every failed request: socket errors, timeouts and 4xx/5xx responses."""
        return self.connect + self.read + self.write + self.status + self.timeout


class WrkResult(msgspec.Struct, frozen=True):
    """One wrk run's figures; latencies in milliseconds."""

    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    duration_s: float
    errors: WrkErrors
    statuses: dict[int, int]  # responses by HTTP status, across threads
    connections: int
    threads: int


class _Latency(msgspec.Struct, frozen=True):
    min: int
    max: int
    mean: float
    stdev: float
    percentiles: dict[str, int]


class _RawResult(msgspec.Struct, frozen=True):
    """What the Lua `done()` hook prints (microseconds, as wrk keeps them)."""

    duration_us: int
    requests: int
    bytes: int
    errors: WrkErrors
    latency_us: _Latency
    statuses: dict[int, int]


def ensure_wrk(*, install: bool = True) -> str:
    """The wrk executable's path; installs the Debian package first if allowed and root."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get") is not None:
        command = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(command, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
            subprocess.run(command, capture_output=True, check=False)
        found = shutil.which("wrk")
        if found is not None:
            return found
    raise WrkMissingError(f"wrk is not installed: {INSTALL_HINT}")


def run_wrk(
    url: str,
    *,
    duration_s: int,
    connections: int = 100,
    threads: int = 2,
    method: str = "GET",
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    requests: Sequence[WrkRequest] | None = None,
    lua_script: str | None = None,
    warmup_s: int = 5,
    timeout_s: int = 2,
) -> WrkResult:
    """Load `url` for `duration_s` seconds (after `warmup_s` of unrecorded load).

    Without `requests` or `lua_script`, every request is `method url` with `headers` and
    `body`. `requests` rotates through a list instead; `lua_script` is custom Lua (see the
    module docstring); either replaces `method`, `headers` and `body`, which must then be
    left out. A request slower than `timeout_s` counts as a timeout error and is
    left out of the latencies (wrk's behaviour). Durations are whole seconds (wrk's).
    """
    if requests is not None and lua_script is not None:
        raise ValueError("give either requests or lua_script, not both")
    custom = requests is not None or lua_script is not None
    if custom and (method != "GET" or body is not None or headers is not None):
        raise ValueError("method, body and headers are for a single request: put them in requests")
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        script = Path(folder) / "script.lua"
        if requests is not None:
            data_file = Path(folder) / "requests.tsv"
            data_file.write_text("".join(_request_line(r) for r in requests), encoding="utf-8")
            user_lua = _REQUESTS_LUA.replace("@DATA_FILE@", _lua_string(str(data_file)))
            user_lua = user_lua.replace("@THREADS@", str(threads))
        elif lua_script is not None:
            user_lua = lua_script
        else:
            user_lua = _static_request_lua(method, body, headers or {})
        result_lua = _RESULT_LUA.replace("@MARKER@", RESULT_MARKER)
        script.write_text(user_lua + result_lua, encoding="utf-8")
        argv = [wrk, f"-t{threads}", f"-c{connections}", f"--timeout={timeout_s}s"]
        argv += ["-s", str(script), url]
        if warmup_s > 0:
            _run([*argv, f"-d{warmup_s}s"], warmup_s)
        raw = _run([*argv, f"-d{duration_s}s"], duration_s)
    return _result(raw, connections=connections, threads=threads)


def _parse_output(stdout: str) -> _RawResult:
    """The JSON line the `done()` hook printed, from wrk's whole stdout."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return msgspec.json.decode(line[len(RESULT_MARKER) :], type=_RawResult)
    raise WrkFailedError(f"wrk printed no result line; its output:\n{stdout}")


def result_from_output(stdout: str, *, connections: int, threads: int) -> WrkResult:
    """A `WrkResult` from wrk's whole stdout (for callers running wrk themselves)."""
    return _result(_parse_output(stdout), connections=connections, threads=threads)


def _run(argv: list[str], duration_s: int) -> _RawResult:
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + _RUN_GRACE_S, check=False
    )
    if completed.returncode != 0:
        raise WrkFailedError(
            f"{' '.join(argv)} exited with {completed.returncode}: "
            f"{completed.stderr.strip() or completed.stdout.strip()}"
        )
    return _parse_output(completed.stdout)


def _result(raw: _RawResult, *, connections: int, threads: int) -> WrkResult:
    seconds = raw.duration_us / 1e6
    percentiles = raw.latency_us.percentiles
    return WrkResult(
        requests_per_s=round(raw.requests / seconds, 1) if seconds else 0.0,
        p50_ms=percentiles["50"] / 1000,
        p90_ms=percentiles["90"] / 1000,
        p99_ms=percentiles["99"] / 1000,
        max_ms=raw.latency_us.max / 1000,
        requests=raw.requests,
        duration_s=round(seconds, 3),
        errors=raw.errors,
        statuses=dict(sorted(raw.statuses.items())),
        connections=connections,
        threads=threads,
    )


def _static_request_lua(method: str, body: str | None, headers: Mapping[str, str]) -> str:
    """Set wrk's one request; wrk formats it once and sends it as it is."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def _request_line(request: WrkRequest) -> str:
    fields = [request.method, request.path, request.body or ""]
    for name, value in request.headers.items():
        fields += [name, value]
    return "\t".join(_escape_field(f) for f in fields) + "\n"


def _escape_field(value: str) -> str:
    return value.replace("%", "%25").replace("\t", "%09").replace("\r", "%0D").replace("\n", "%0A")


def _lua_string(value: str) -> str:
    """A Lua string literal: printable ASCII as is, any other byte as a decimal escape."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in '"\\' or not 0x20 <= byte < 0x7F:
            out.append(f"\\{byte:03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
