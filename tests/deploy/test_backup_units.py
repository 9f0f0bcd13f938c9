"""The scheduled-backup units: a timer per side starting a hardened one-shot `backup --dir`
whose --every matches the timer, with the worker's credentials; verified by systemd-analyze."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.deploy.deployfiles import SYSTEMD_DIR, UNIT_VENV, systemd_verify, unit_values

SIDES = {"gateway": "request-gateway", "processor": "response-processor"}


@pytest.mark.parametrize(("side", "command"), sorted(SIDES.items()))
def test_the_timer_starts_an_hourly_hardened_backup_of_the_side(side: str, command: str) -> None:
    service = SYSTEMD_DIR / f"airlock-{side}-backup.service"
    timer = SYSTEMD_DIR / f"airlock-{side}-backup.timer"
    (exec_start,) = unit_values(service, "Service", "ExecStart")
    words = exec_start.split()
    assert words[:4] == [UNIT_VENV + command, "backup", "--dir", f"/var/backups/airlock/{side}"]
    # The alert compares the backup's age with --every: it must be the timer's interval.
    assert words[words.index("--every") + 1] == "1h"
    assert unit_values(timer, "Timer", "OnCalendar") == ["hourly"]
    assert words[words.index("--keep-days") + 1] == "30"
    # The database volume's free space, where PostgreSQL runs on the same host (readable
    # under ProtectSystem=strict, which makes /var/lib read-only, not hidden).
    assert words[words.index("--free-space") + 1] == "database=/var/lib/postgresql"
    hidden = " ".join(unit_values(service, "Service", "InaccessiblePaths"))
    assert "/var/lib/postgresql" not in hidden
    metrics_file = Path(words[words.index("--metrics-file") + 1])
    writable = " ".join(unit_values(service, "Service", "ReadWritePaths")).split()
    assert any(metrics_file.is_relative_to(folder) for folder in writable)
    assert unit_values(service, "Service", "Type") == ["oneshot"]
    assert unit_values(service, "Service", "User") == ["airlock"]
    worker = SYSTEMD_DIR / f"airlock-{side}-worker.service"
    for key in ("LoadCredential", "Environment", "EnvironmentFile", "ProtectSystem"):
        assert unit_values(service, "Service", key) == unit_values(worker, "Service", key)


def test_systemd_analyze_verifies_the_backup_units(tmp_path: Path) -> None:
    units = [f"airlock-{side}-backup.{kind}" for side in SIDES for kind in ("service", "timer")]
    assert systemd_verify(units, tmp_path) == "exit 0"


def test_the_daily_base_backup_runs_as_postgres_and_matches_its_timer() -> None:
    service = SYSTEMD_DIR / "airlock-base-backup.service"
    timer = SYSTEMD_DIR / "airlock-base-backup.timer"
    (exec_start,) = unit_values(service, "Service", "ExecStart")
    words = exec_start.split()
    assert words[0] == UNIT_VENV + "airlock-base-backup"
    assert (Path(sys.executable).parent / "airlock-base-backup").exists()
    assert words[words.index("--every") + 1] == "1d"
    assert unit_values(timer, "Timer", "OnCalendar") == ["daily"]
    # The server's own files: run as its user, and write only the backups, the archive and
    # the metrics.
    assert unit_values(service, "Service", "User") == ["postgres"]
    writable = " ".join(unit_values(service, "Service", "ReadWritePaths")).split()
    for option in ("--dir", "--wal-archive", "--metrics-file"):
        target = Path(words[words.index(option) + 1])
        assert any(target.is_relative_to(folder) for folder in writable), option
    assert unit_values(service, "Service", "ProtectSystem") == ["strict"]
    tmpfiles = (SYSTEMD_DIR / "airlock-postgres.tmpfiles.conf").read_text().splitlines()
    for folder in ("/var/backups/airlock/base", "/var/lib/postgresql/wal-archive"):
        (line,) = [line for line in tmpfiles if line.startswith(f"d {folder} ")]
        assert line.split()[2:5] == ["0700", "postgres", "postgres"], line


def test_systemd_analyze_verifies_the_base_backup_units(tmp_path: Path) -> None:
    units = ["airlock-base-backup.service", "airlock-base-backup.timer"]
    assert systemd_verify(units, tmp_path) == "exit 0"
