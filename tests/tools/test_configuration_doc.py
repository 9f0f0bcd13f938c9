"""docs/configuration.md says what the settings structs say: every field, type and default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from request_gateway.settings import GatewaySettings
from tools import configuration_doc
from tools.configuration_doc import COMMAND, DOC, PARTS, field_notes, render


def test_the_configuration_doc_matches_the_settings_structs() -> None:
    assert DOC.exists(), f"{DOC} is missing: run `{COMMAND}`"
    assert DOC.read_text() == render(), (
        f"{DOC.name} is out of date with the settings structs: run `{COMMAND}` "
        "(python -m tools.configuration_doc) and commit the result"
    )


def test_every_field_of_every_part_is_documented() -> None:
    text = render()
    for part in PARTS:
        for name in part.struct.__struct_fields__:
            assert f"| {part.key(name)} |" in text, (part.title, name)


def test_descriptions_come_from_the_comments_beside_the_fields() -> None:
    notes = field_notes(GatewaySettings)
    assert notes["database_url"].text == "Unset: an embedded PostgreSQL under data_dir"
    assert notes["rate_limit_timeout_s"].text.startswith("Longer without an answer from Redis")
    assert notes["jwt_secret"].section == "Authentication"
    # Declared by the link's settings, which both services inherit:
    assert notes["outbox_dir"].text == "Default: data_dir/outbox"


def test_a_field_added_to_a_struct_is_rendered_with_its_comment() -> None:
    class Extended(GatewaySettings, frozen=True, kw_only=True):
        brand_new_setting: int = 7  # what it is for

    rendered = configuration_doc.render_part(dataclasses.replace(PARTS[0], struct=Extended))
    assert "| `GATEWAY_BRAND_NEW_SETTING` | integer | `7` | What it is for |" in rendered


def test_the_check_names_the_command_that_regenerates_a_stale_doc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# Configuration\n")
    monkeypatch.setattr(configuration_doc, "DOC", stale)
    assert configuration_doc.main(["--check"]) == 1
    assert COMMAND in capsys.readouterr().out
    assert configuration_doc.main([]) == 0
    assert configuration_doc.main(["--check"]) == 0
    assert stale.read_text() == render()
