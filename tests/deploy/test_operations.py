"""docs/operations.md has an entry for every alert's runbook link, and every link into it
from the other docs lands on a section that exists."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.deployfiles import PROMETHEUS_DIR, REPO, load_yaml

OPERATIONS = REPO / "docs" / "operations.md"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))


def _anchors(markdown: str) -> set[str]:
    """Explicit `<a id>` anchors and the GitHub slugs of the headings."""
    explicit = set(re.findall(r'<a id="([^"]+)"></a>', markdown))
    slugs = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.MULTILINE):
        text = re.sub(r"[`*_\[\]()]", "", heading).strip().lower()
        slugs.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return explicit | slugs


def _runbooks() -> dict[str, str]:
    rules: list[dict[str, Any]] = [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    return {rule["alert"]: rule["annotations"]["runbook"] for rule in rules}


@pytest.mark.parametrize(("alert", "runbook"), sorted(_runbooks().items()))
def test_every_alerts_runbook_anchor_exists_in_the_operations_guide(
    alert: str, runbook: str
) -> None:
    path, _, anchor = runbook.partition("#")
    assert path == "docs/operations.md", alert
    assert anchor in _anchors(OPERATIONS.read_text(encoding="utf-8")), f"{alert}: #{anchor}"


def test_every_link_into_the_operations_guide_lands_on_a_section() -> None:
    anchors = _anchors(OPERATIONS.read_text(encoding="utf-8"))
    documents = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
    links = [
        (document.name, anchor)
        for document in documents
        for anchor in re.findall(r"operations\.md#([\w-]+)", document.read_text("utf-8"))
    ]
    own = re.findall(r"\]\(#([\w-]+)\)", OPERATIONS.read_text(encoding="utf-8"))
    links += [("operations.md", anchor) for anchor in own]
    assert links
    missing = [(name, anchor) for name, anchor in links if anchor not in anchors]
    assert not missing, missing
