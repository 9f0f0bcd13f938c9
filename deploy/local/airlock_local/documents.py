"""The small document collection `documents.search` runs over in the demo.

Ids are derived from the titles, so loading the collection again finds the same documents.
"""

from __future__ import annotations

import uuid
from typing import Final

_NAMESPACE: Final = uuid.UUID("6f1c2d1e-5b7a-4c53-9a53-6a1f0d6a8e11")

_COLLECTION: Final = (
    (
        "What an air gap is",
        "An air gap keeps two networks physically apart: no cable, no radio, no shared "
        "switch. Data crosses only when someone or something carries it, which makes every "
        "crossing deliberate and auditable.",
    ),
    (
        "Data diodes",
        "A data diode is a network device that lets data flow in one direction only, "
        "enforced by hardware: a fibre link with a transmitter on one side and a receiver "
        "on the other. Nothing can ever flow back, not even an acknowledgement.",
    ),
    (
        "Batch files in Airlock",
        "Airlock moves work between networks as batch files: one JSON-lines file per batch "
        "with a header, records and a trailer holding a SHA-256 digest and an Ed25519 "
        "signature. A file appears in a drop zone only by an atomic rename.",
    ),
    (
        "Ed25519 signatures",
        "Ed25519 is a public-key signature scheme on an elliptic curve. Signatures are "
        "small, fast to check and deterministic: the same key signing the same digest always "
        "gives the same signature, so a batch rendered again is byte for byte identical.",
    ),
    (
        "Acknowledgements and resends",
        "Each side acknowledges every batch it has applied. A batch that is not acknowledged "
        "in time is sent again with the same id and sequence number, and the receiver, which "
        "remembers every batch it applied, simply acknowledges it again.",
    ),
    (
        "Quarantine",
        "A batch that fails verification, because it was truncated, altered or signed with "
        "an unknown key, is moved to a quarantine folder with a reason file beside it. "
        "Nothing from a quarantined batch is ever applied.",
    ),
    (
        "Full-text search in PostgreSQL",
        "PostgreSQL indexes text as a tsvector of normalised words and matches it with a "
        "tsquery. websearch_to_tsquery accepts what people type, quoted phrases and excluded "
        "words included, and ts_headline marks the matches in a snippet.",
    ),
    (
        "Redis as a work queue",
        "Redis keeps the queue of jobs the workers run, but never the truth: every request "
        "lives in PostgreSQL first, and a periodic reconciliation puts back in the queue any "
        "request that was received but not finished.",
    ),
    (
        "Rate limits per profile",
        "Each user has a profile type that says which request types they may submit, how "
        "many per minute, how large a payload may be and how many may be pending at once. "
        "Refusals carry Retry-After and RateLimit headers.",
    ),
    (
        "Passwords and tokens",
        "Passwords are stored as argon2id hashes. A login returns a short-lived access token "
        "and a refresh token; refreshing rotates the refresh token, and using a rotated one "
        "again revokes the whole family of tokens.",
    ),
    (
        "Removable media",
        "Where no transfer host is allowed, batches can travel on removable media: the "
        "medium's folder is the destination on one side and the source on the other, and a "
        "batch only ever appears on it complete.",
    ),
    (
        "The lighthouse keeper",
        "The lighthouse keeper climbed the spiral stairs each evening to light the lamp, "
        "wound the clockwork that turned the lens, and wrote the weather in the log before "
        "the ships came round the headland.",
    ),
    (
        "Sourdough bread",
        "A sourdough starter is flour and water fermented by wild yeast and lactic bacteria. "
        "Fed daily, it leavens bread slowly, which gives the crumb its open texture and the "
        "crust its slightly sour taste.",
    ),
    (
        "Migratory birds",
        "Arctic terns fly from the Arctic to the Antarctic and back every year, the longest "
        "migration of any animal. They navigate by the sun, the stars and the Earth's "
        "magnetic field.",
    ),
    (
        "Tea ceremonies",
        "In the Japanese tea ceremony every gesture is prescribed, from folding the silk "
        "cloth to whisking the powdered green tea, so that host and guests can give their "
        "whole attention to the moment.",
    ),
)


def demo_documents() -> list[dict[str, str]]:
    """The collection as `POST /api/v1/documents` takes it: `{"id", "title", "body"}`."""
    return [
        {"id": str(uuid.uuid5(_NAMESPACE, title)), "title": title, "body": body}
        for title, body in _COLLECTION
    ]
