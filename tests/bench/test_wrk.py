"""bench.wrk: wrk's result line read into figures, and request lists sent as given."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bench.wrk import (
    RESULT_MARKER,
    WrkFailedError,
    WrkRequest,
    _lua_string,
    result_from_output,
    run_wrk,
)
from servicekit.testing import need_tool

DONE_LINE = (
    RESULT_MARKER + '{"duration_us":2000000,"requests":5000,"bytes":1,'
    '"errors":{"connect":1,"read":2,"write":0,"status":3,"timeout":4},'
    '"latency_us":{"min":100,"max":250000,"mean":12.5,"stdev":3.0,'
    '"percentiles":{"50":1500,"75":2000,"90":4000,"99":90500,"99.9":200000}},'
    '"statuses":{"200":4997,"503":3}}'
)


def test_result_line_gives_rate_milliseconds_and_errors_by_kind() -> None:
    result = result_from_output(f"Running 2s test\n{DONE_LINE}\n", connections=100, threads=2)
    assert result.requests_per_s == 2500.0
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == (1.5, 4.0, 90.5, 250.0)
    assert result.errors.total == 10
    assert result.statuses == {200: 4997, 503: 3}


def test_output_without_result_line_is_an_error() -> None:
    with pytest.raises(WrkFailedError):
        result_from_output("unable to connect to 127.0.0.1:1\n", connections=1, threads=1)


def test_lua_string_escapes_quotes_backslashes_and_non_ascii() -> None:
    assert _lua_string('a"b\\c\té') == '"a\\034b\\092c\\009\\195\\169"'


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[set[tuple[str, str, str, str]]] = set()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        self.seen.add((self.command, self.path, self.headers.get("X-Token", ""), body))
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_request_list_is_sent_as_given_and_statuses_counted(recorder_url: str) -> None:
    need_tool("wrk", "wrk")
    requests = [
        WrkRequest("GET", "/a", {"X-Token": "one\ttab 100%"}),
        WrkRequest("POST", "/b", {"X-Token": "two"}, '{"line":"x\\ny"}\n'),
        WrkRequest("GET", "/missing"),
    ]
    result = run_wrk(recorder_url, duration_s=1, warmup_s=0, connections=2, requests=requests)
    assert _Recorder.seen == {
        ("GET", "/a", "one\ttab 100%", ""),
        ("POST", "/b", "two", '{"line":"x\\ny"}\n'),
        ("GET", "/missing", "", ""),
    }
    assert set(result.statuses) == {200, 404}
    assert result.errors.status == result.statuses[404]
