"""deploy/prometheus/rehearsal.py: short `for:` and time thresholds for rehearsing alert
delivery, the rest of each rule as shipped; promtool accepts what it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servicekit.testing import need_tool
from tests.deploy.deployfiles import PROMETHEUS_DIR, load_yaml

SCRIPT = PROMETHEUS_DIR / "rehearsal.py"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))


def _alerts(folder: Path) -> dict[str, dict[str, object]]:
    return {
        rule["alert"]: rule
        for path in sorted(folder.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_for_and_a_threshold_change_and_nothing_else(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--for", "3s",
         "--threshold", "AirlockPeerLinkStale=15", *map(str, RULES)],
        check=True,
    )  # fmt: skip
    shipped, rehearsal = _alerts(PROMETHEUS_DIR / "rules"), _alerts(tmp_path)
    assert set(shipped) == set(rehearsal)
    assert rehearsal["AirlockPeerLinkStale"]["expr"] == (
        "max by (job, peer) (link_last_inbound_age_seconds) > 15"
    )
    for name, rule in shipped.items():
        copy = rehearsal[name]
        assert copy.get("for") == ("3s" if "for" in rule else None), name
        assert copy["labels"] == rule["labels"]
        assert copy["annotations"] == rule["annotations"]
        if name != "AirlockPeerLinkStale":
            assert copy["expr"] == rule["expr"]
    promtool = need_tool("promtool", "prometheus")
    subprocess.run([promtool, "check", "rules", *map(str, tmp_path.glob("*.yml"))], check=True)


def test_a_threshold_for_no_alert_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--threshold", "NoSuchAlert=1",
         *map(str, RULES)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "NoSuchAlert" in result.stderr
