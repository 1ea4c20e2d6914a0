"""Where the shared SIP corpus lives, and its INDEX rows (read, never copied into the repo)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("SIPFSM_CORPUS", _REPO.parent / "shared" / "corpus"))


@dataclass(frozen=True)
class Entry:
    """One INDEX.tsv row."""

    name: str
    expected: str
    liberal: str
    what: str
    path: Path

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


def missing_corpus() -> None:
    """Skip (fail under CI) when the shared corpus is absent."""
    message = f"the shared SIP corpus is not at {CORPUS} (set SIPFSM_CORPUS)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def entries(collection: str) -> list[Entry]:
    """The INDEX rows of ``rfc4475`` or ``rfc5118`` (empty when the corpus is missing)."""
    index = CORPUS / collection / "INDEX.tsv"
    if not index.exists():
        return []
    with index.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        Entry(row["name"], row["expected"], row.get("liberal_parser_may_accept", "-"),
              row["what_it_tests"], CORPUS / collection / row["file"])
        for row in rows
    ]


def websocket_messages() -> list[Path]:
    """The benchmark set: typical SIP-over-WebSocket traffic."""
    return sorted((CORPUS / "websocket").glob("*.sip"))
