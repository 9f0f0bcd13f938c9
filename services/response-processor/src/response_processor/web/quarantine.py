"""Batches the importer quarantined, read from their `.reason.json` files, and the
runbook step (docs/operations.md) for each reason."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec

from batchformat.dropzone import QuarantineReason
from batchformat.errors import RejectReason

RUNBOOK: Final = "docs/operations.md"
RECOVER: Final = f"{RUNBOOK}#recover-a-quarantined-batch"
ROTATE: Final = f"{RUNBOOK}#rotate-signing-keys"
ALERT: Final = f"{RUNBOOK}#alert-airlockbatchquarantined"

_DAMAGED = "Damaged in transit: the producer resends it; nothing to do unless it repeats."
_FORGED = "Possibly altered or forged: do not recover; keep the file and find its origin."
STEPS: Final[dict[str, tuple[str, str]]] = {
    RejectReason.UNKNOWN_KEY: (
        "Trust the producer's new public key, then let the resend through or recover it.",
        ROTATE,
    ),
    RejectReason.BAD_SIGNATURE: (_FORGED, ALERT),
    RejectReason.SOURCE_MISMATCH: (_FORGED, ALERT),
    RejectReason.DIGEST_MISMATCH: (_DAMAGED, ALERT),
    RejectReason.TRAILER_MISSING: (_DAMAGED, ALERT),
    RejectReason.RECORD_COUNT_MISMATCH: (_DAMAGED, ALERT),
    RejectReason.LINE_TOO_LONG: ("Raise the line limit, then recover the batch.", RECOVER),
    RejectReason.RECORD_INVALID: (
        "The peer runs a newer release: upgrade this side, then recover the batch.",
        RECOVER,
    ),
}
_DEFAULT_STEP: Final = ("Read the reason, fix the cause, then recover the batch.", RECOVER)
REASON_SUFFIX: Final = ".reason.json"
MAX_LISTED: Final = 100


class QuarantinedBatch(msgspec.Struct, frozen=True):
    """One quarantined file, why, and what to do about it."""

    reason: QuarantineReason
    step: str
    runbook: str


def runbook_step(code: str) -> tuple[str, str]:
    """What to do about a quarantine reason, and where the runbook says so."""
    return STEPS.get(code, _DEFAULT_STEP)


def read_quarantine(folder: Path, limit: int = MAX_LISTED) -> list[QuarantinedBatch]:
    """The newest ``limit`` quarantined batches (blocking: run it in a thread)."""
    if not folder.is_dir():
        return []
    reasons = sorted(
        (path for path in folder.iterdir() if path.name.endswith(REASON_SUFFIX)),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    found = []
    for path in reasons[:limit]:
        try:
            reason = msgspec.json.decode(path.read_bytes(), type=QuarantineReason)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        step, runbook = runbook_step(reason.code)
        found.append(QuarantinedBatch(reason, step, runbook))
    return found
