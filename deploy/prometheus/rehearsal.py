"""Copies of the alert rules with short timings, to rehearse alert delivery end to end
(docs/operations.md, "Rehearse alert delivery"; tests/e2e/test_alerts.py runs it).

    python deploy/prometheus/rehearsal.py --out DIR [--for 5s] [--threshold NAME=VALUE ...]
        deploy/prometheus/rules/*.yml

Each rule file is written to DIR under its own name with every alert's ``for:`` set to the
given duration (alerts without one keep none), and, for each ``--threshold NAME=VALUE``, the
number an alert's expression ends with (``... > 300``) replaced by VALUE. The expressions,
labels and annotations are otherwise the shipped ones. Never load these into production.
Needs PyYAML (the workspace's dev environment has it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

_TRAILING_NUMBER = re.compile(r"(?P<head>.*[<>=]=?\s*)(?P<number>[0-9.e+*\s]+?)\s*$", re.DOTALL)


def rehearsal_rules(
    document: dict[str, Any], for_: str | None, thresholds: Mapping[str, str]
) -> dict[str, Any]:
    """The rules `document` with `for_` on every alert that waits, and `thresholds` applied."""
    unused = set(thresholds)
    for group in document["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if name is None:
                continue
            if for_ is not None and "for" in rule:
                rule["for"] = for_
            if name in thresholds:
                match = _TRAILING_NUMBER.fullmatch(rule["expr"].strip())
                if match is None:
                    raise ValueError(f"{name}: its expression does not end with a comparison")
                rule["expr"] = match["head"] + thresholds[name]
                unused.discard(name)
    document["_unused_thresholds"] = sorted(unused)
    return document


def main(argv: Sequence[str] | None = None) -> int:
    """Write the rehearsal copies; 2 for a --threshold that names no alert."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rules", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--for", dest="for_", default=None, help="e.g. 5s")
    parser.add_argument("--threshold", action="append", default=[], metavar="ALERT=VALUE")
    args = parser.parse_args(argv)
    thresholds = dict(item.split("=", 1) for item in args.threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    unused = set(thresholds)
    for path in args.rules:
        document = rehearsal_rules(yaml.safe_load(path.read_text()), args.for_, thresholds)
        unused &= set(document.pop("_unused_thresholds"))
        (args.out / path.name).write_text(yaml.safe_dump(document, sort_keys=False))
    if unused:
        print(f"rehearsal.py: no alert named {', '.join(sorted(unused))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
