from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog
from prometheus_client import REGISTRY

from servicekit.logs import configure_logging
from tests.servicekit.log_capture import LogCapture

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
ARGON2_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub"


def test_lines_are_json_with_iso_utc_time_level_service_and_logger(log_capture: LogCapture) -> None:
    structlog.get_logger("gateway.auth").info("user_logged_in", username="bob")

    [line] = log_capture.lines()
    assert line["event"] == "user_logged_in"
    assert line["username"] == "bob"
    assert line["level"] == "info"
    assert line["logger"] == "gateway.auth"
    assert line["service"] == "test-service"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", str(line["timestamp"]))


def test_context_variables_are_merged_into_every_line(log_capture: LogCapture) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-1", trace_id="t-9"):
        structlog.get_logger().info("inside")
        logging.getLogger("asyncpg").warning("foreign inside")

    for line in log_capture.lines():
        assert line["request_id"] == "req-1"
        assert line["trace_id"] == "t-9"


def test_secrets_never_reach_the_output(log_capture: LogCapture) -> None:
    structlog.get_logger().info(
        "login",
        password="hunter2",
        access_token=JWT,
        password_hash=ARGON2_HASH,
        dsn="postgresql://gateway:s3cr3t@db/gateway",
        note=f"Authorization: Bearer {JWT}",
        sha256="ab" * 32,
    )

    text = log_capture.text
    for secret in ("hunter2", JWT, ARGON2_HASH, "s3cr3t"):
        assert secret not in text
    assert "ab" * 32 in text


def test_tracebacks_are_scrubbed_too(log_capture: LogCapture) -> None:
    try:
        raise ValueError(f"cannot verify {ARGON2_HASH} for postgresql://u:hunter2@db/x")
    except ValueError:
        structlog.get_logger().exception("verification_failed")

    [line] = log_capture.lines()
    assert "ValueError: cannot verify" in str(line["exception"])
    assert ARGON2_HASH not in log_capture.text
    assert "hunter2" not in log_capture.text


@pytest.mark.parametrize("name", ["uvicorn.error", "granian", "arq.worker", "asyncpg"])
def test_third_party_stdlib_lines_are_formatted_and_redacted(
    log_capture: LogCapture, name: str
) -> None:
    third_party = logging.getLogger(name)
    third_party.addHandler(logging.StreamHandler(io.StringIO()))  # as servers install their own
    configure_logging("test-service", json=True, stream=log_capture.stream)

    third_party.error("connection to %s failed", "postgresql://u:hunter2@db/x")

    [line] = log_capture.lines()
    assert line["logger"] == name
    assert line["level"] == "error"
    assert line["service"] == "test-service"
    assert "hunter2" not in log_capture.text
    assert third_party.handlers == []


def test_foreign_exceptions_are_rendered_and_scrubbed(log_capture: LogCapture) -> None:
    try:
        raise RuntimeError(f"token {JWT} rejected")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    [line] = log_capture.lines()
    assert "RuntimeError" in str(line["exception"])
    assert JWT not in log_capture.text


def test_lines_below_the_level_are_dropped(log_capture: LogCapture) -> None:
    structlog.get_logger().debug("noise")
    logging.getLogger("arq").debug("more noise")
    structlog.get_logger().warning("signal")

    assert [line["event"] for line in log_capture.lines()] == ["signal"]


def test_development_mode_renders_readable_console_lines_without_secrets() -> None:
    stream = io.StringIO()
    handler = configure_logging("dev-service", json=False, level="DEBUG", stream=stream)
    try:
        try:
            raise ValueError("password=hunter2")
        except ValueError:
            structlog.get_logger().exception("boom", api_key="k-123456")
    finally:
        logging.getLogger().removeHandler(handler)

    text = stream.getvalue()
    assert "boom" in text
    assert "service=dev-service" in text
    assert "Traceback" in text
    assert "hunter2" not in text
    assert "k-123456" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_configuring_again_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    first = configure_logging("a", json=True, stream=io.StringIO())
    second = configure_logging("b", json=True, stream=io.StringIO())
    try:
        assert first not in root.handlers
        assert root.handlers == [*before, second]
    finally:
        root.removeHandler(second)


def test_output_goes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    handler = configure_logging("stdout-service", json=True)
    try:
        structlog.get_logger().info("to_stdout", password="hunter2")
    finally:
        logging.getLogger().removeHandler(handler)

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "to_stdout"
    assert line["password"] == "[REDACTED]"


def _logged(level: str, service: str) -> float:
    value = REGISTRY.get_sample_value("log_messages_total", {"service": service, "level": level})
    return value or 0.0


def test_every_written_line_is_counted_by_level_ours_and_third_partys() -> None:
    handler = configure_logging("counting-service", json=True, level="INFO", stream=io.StringIO())
    try:
        before = {level: _logged(level, "counting-service") for level in ("info", "error", "debug")}

        structlog.get_logger().error("boom")
        logging.getLogger("asyncpg").error("connection lost")
        structlog.get_logger().info("fine")
        structlog.get_logger().debug("dropped, so not counted")

        after = {level: _logged(level, "counting-service") for level in ("info", "error", "debug")}
    finally:
        logging.getLogger().removeHandler(handler)
    assert after["error"] - before["error"] == 2
    assert after["info"] - before["info"] == 1
    assert after["debug"] == before["debug"]
