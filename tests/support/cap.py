"""The CAP documents the tests read, and the OASIS schema they are checked against."""

from __future__ import annotations

from pathlib import Path

CAP = Path(__file__).parent.parent / "schemas" / "cap"
XSD = CAP / "CAP-v1.2.xsd"


def read(name: str) -> bytes:
    """One of the CAP documents in tests/schemas/cap."""
    return (CAP / name).read_bytes()


def quake_cancel(*, sender: str | None = None, status: str | None = None) -> bytes:
    """A CAP 1.1 Cancel of the USGS earthquake (usgs_earthquake_1_1.xml), from its own sender
    unless `sender` is given, of its status (Actual) unless `status` is."""
    from alertanim.schemas import parse_cap

    original = read("usgs_earthquake_1_1.xml")
    ref = parse_cap(original).ref.triple().encode()
    cancel = (original.replace(b"<identifier>us2025abcd.1736719800",
                               b"<identifier>us2025abcd.cancel")
              .replace(b"<msgType>Alert</msgType>",
                       b"<msgType>Cancel</msgType><references>" + ref + b"</references>", 1))
    if sender is not None:
        cancel = cancel.replace(b"<sender>ens@usgs.gov</sender>",
                                f"<sender>{sender}</sender>".encode(), 1)
    if status is not None:
        cancel = cancel.replace(b"<status>Actual</status>", f"<status>{status}</status>".encode())
    return cancel
