"""A side's batch encryption settings and keys, as each service loads them at start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog

from airlink.endpoint import LinkEndpointSettings, load_link_encryption
from batchformat import KeyFileError, generate_encryption_key_pair
from batchformat.agestream import AgeProcessError


def settings(data_dir: Path, **overrides: object) -> LinkEndpointSettings:
    return LinkEndpointSettings(
        data_dir=data_dir, network_id="response-net", peer_network_id="request-net",
        **overrides,  # type: ignore[arg-type]
    )  # fmt: skip


def test_production_refuses_to_send_in_clear_unless_the_link_is_confidential(
    tmp_path: Path,
) -> None:
    problems = settings(tmp_path, encryption_enabled=False).link_production_problems("P_")
    assert any(p.startswith("P_ENCRYPTION_ENABLED") for p in problems)
    confidential = settings(tmp_path, encryption_enabled=False, link_confidential=True)
    assert not any("ENCRYPTION" in p for p in confidential.link_production_problems("P_"))


def test_production_refuses_to_start_without_the_peers_encryption_key(tmp_path: Path) -> None:
    generate_encryption_key_pair("response-net", tmp_path / "keys")
    with pytest.raises(KeyFileError, match=r"no peer encryption key \(\*\.agepub\)"):
        load_link_encryption(settings(tmp_path), generate_missing=False)


def test_keys_are_found_by_id_and_unencrypted_batches_refused_in_production(
    tmp_path: Path,
) -> None:
    generate_encryption_key_pair("response-net", tmp_path / "keys")
    generate_encryption_key_pair("response-net-2027", tmp_path / "keys")
    _, recipient = generate_encryption_key_pair("request-net", tmp_path / "made-by-the-peer")
    peers = tmp_path / "keys" / "peers"
    peers.mkdir()
    (peers / recipient.name).write_bytes(recipient.read_bytes())
    encryption = load_link_encryption(settings(tmp_path), generate_missing=False)
    assert list(encryption.recipients or ()) == ["request-net"]
    assert sorted(encryption.decryption_keys) == ["response-net", "response-net-2027"]
    assert encryption.accept_unencrypted is False
    allowed = load_link_encryption(
        settings(tmp_path, accept_unencrypted=True), generate_missing=False
    )
    assert allowed.accept_unencrypted is True


def test_a_decryption_key_others_can_read_refuses_the_start(tmp_path: Path) -> None:
    identity, _ = generate_encryption_key_pair("response-net", tmp_path / "keys")
    identity.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_link_encryption(settings(tmp_path), generate_missing=True)


def test_keys_come_from_a_secrets_folder_holding_other_files(tmp_path: Path) -> None:
    secrets = tmp_path / "run-secrets"  # as /run/secrets or $CREDENTIALS_DIRECTORY
    generate_encryption_key_pair("response-net", secrets)
    (secrets / "processor_jwt_secret").write_text("not a key")
    (secrets / "response-net.agepub").unlink()
    loaded = load_link_encryption(
        settings(tmp_path, decryption_keys_dir=secrets), generate_missing=True
    )
    assert list(loaded.decryption_keys) == ["response-net"]


def test_development_makes_a_key_and_logs_ids_never_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    encryption = load_link_encryption(settings(tmp_path), generate_missing=True)
    assert encryption.recipients is None  # no peer key yet: development sends /1, warned
    secret = (tmp_path / "keys" / "response-net.agekey").read_text().splitlines()[-1]
    assert secret.startswith("AGE-SECRET-KEY-1")
    logged = caplog.text + "".join(capsys.readouterr())
    assert "response-net" in logged
    assert secret not in logged
    assert secret not in repr(encryption)


def test_production_refuses_to_start_without_the_age_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_encryption_key_pair("response-net", tmp_path / "keys")
    _, recipient = generate_encryption_key_pair("request-net", tmp_path / "made-by-the-peer")
    (tmp_path / "keys" / "peers").mkdir()
    (tmp_path / "keys" / "peers" / recipient.name).write_bytes(recipient.read_bytes())
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AgeProcessError, match=r"the age command is missing"):
        load_link_encryption(settings(tmp_path), generate_missing=False)
    with structlog.testing.capture_logs() as logged:  # development starts, saying what fails
        load_link_encryption(settings(tmp_path), generate_missing=True)
    assert "age_command_missing" in [entry["event"] for entry in logged]
