"""The CAP documents the tests read, and the OASIS schema they are checked against."""

from __future__ import annotations

from pathlib import Path

CAP = Path(__file__).parent.parent / "schemas" / "cap"
XSD = CAP / "CAP-v1.2.xsd"


def read(name: str) -> bytes:
    """One of the CAP documents in tests/schemas/cap."""
    return (CAP / name).read_bytes()
