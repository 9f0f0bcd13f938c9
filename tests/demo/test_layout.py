"""The demo puts every drop zone and key where the services themselves look for them."""

from __future__ import annotations

from pathlib import Path

from airlink.endpoint import LinkEndpointSettings
from airlock_local.layout import DemoLayout, SideLayout
from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings


def _assert_same_places(side: SideLayout, service: LinkEndpointSettings) -> None:
    assert side.network_id == service.network_id
    assert side.outbox == service.outbox_path
    assert side.inbox == service.inbox_path
    assert side.inbox_archive == service.link_settings().archive_dir
    assert side.signing_key == service.signing_key_path
    assert side.peer_keys == service.peer_keys_path


def test_each_side_is_laid_out_as_its_service_reads_its_data_dir(tmp_path: Path) -> None:
    layout = DemoLayout.at(tmp_path)
    _assert_same_places(layout.gateway, GatewaySettings(data_dir=layout.gateway.data_dir))
    _assert_same_places(layout.processor, ProcessorSettings(data_dir=layout.processor.data_dir))


def test_the_two_sides_are_each_others_peers(tmp_path: Path) -> None:
    layout = DemoLayout.at(tmp_path)
    assert layout.gateway.link.peer_network_id == layout.processor.network_id
    assert layout.processor.link.peer_network_id == layout.gateway.network_id
