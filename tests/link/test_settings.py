"""Link settings: the spec's defaults, and combinations that cannot work are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlink import GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID, LinkSettings


def settings(**overrides: object) -> LinkSettings:
    fields: dict[str, object] = {
        "network_id": GATEWAY_NETWORK_ID,
        "peer_network_id": PROCESSOR_NETWORK_ID,
        "outbox_dir": Path("/srv/outbox"),
        "inbox_dir": Path("/srv/inbox"),
        **overrides,
    }
    return LinkSettings(**fields)  # type: ignore[arg-type]


def test_defaults_are_the_specifications() -> None:
    s = settings()
    assert (s.export_window_s, s.max_batch_records) == (1.0, 10_000)
    assert (s.ack_delay_s, s.heartbeat_interval_s, s.resend_after_s) == (2.0, 30.0, 300.0)
    assert (s.sweep_interval_s, s.stale_after_s) == (60.0, 90.0)
    assert (GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID) == ("request-net", "response-net")


def test_inbox_subfolders_are_named_by_the_spec() -> None:
    s = settings()
    assert s.importing_dir == Path("/srv/inbox/.importing")
    assert s.archive_dir == Path("/srv/inbox/archive")
    assert s.quarantine_dir == Path("/srv/inbox/quarantine")


def test_a_side_cannot_be_its_own_peer() -> None:
    with pytest.raises(ValueError, match="must differ"):
        settings(peer_network_id=GATEWAY_NETWORK_ID)


def test_resending_before_a_heartbeat_could_carry_the_ack_is_refused() -> None:
    with pytest.raises(ValueError, match="resend_after_s"):
        settings(heartbeat_interval_s=30.0, resend_after_s=30.0)
