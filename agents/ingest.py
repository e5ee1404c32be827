"""What is let in from the `alerts` topic, and how a run starts: an alert (JSON, or a CAP
document) is validated, a CAP Cancel applied, and its id claimed in the ledger, which tells a new
alert from a redelivery and a re-publication. A new or unfinished alert starts at the first
stage; a finished one is answered with its stored result. The record that claimed the id is the
one whose hand-over carries the alert's instant event (agents/processing.py).

The record's Kafka key is the publisher's business: none, the alert's id, a CAP identifier, a
region. It is not checked. Everything after ingest is keyed by the alert's id, so every stage
of one alert goes through one partition whatever the publisher keyed it by; copies of one alert
that came in on different partitions are still one alert, because the ledger's claim is a
conditional write in the store (the same content under another record is a re-publication), and
a CAP Cancel's marker is in the store too, so it stops an alert whichever partition either came
in on.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from alertanim.schemas import (Alert, AnimationReady, CapAlert, NotAnimated, StageMessage,
                               cap_alert_id, is_cap, parse_alert, parse_cap)
from alertanim.schemas.cap import alert_to_animate

from .emitter import Position
from .events import new_trace
from .ledger import Claim, Ledger, seed_for
from .topology import FIRST


class Started(NamedTuple):
    """A run started (or started again): the first stage's message, and whether the record is
    the one that claimed the alert's id, and so sends its instant event."""

    message: StageMessage
    first: bool


class Ingest:
    def __init__(self, settings, ledger: Ledger, run: str):
        self.settings = settings
        self.ledger = ledger
        self.run = run

    def __call__(self, raw: bytes, at: Position | None = None, key: bytes | None = None,
                 traceparent: str | None = None) -> Started | AnimationReady | None:
        """`key` is the Kafka record's key (b"" when it had none; None when the alert did not
        come from Kafka): any key is accepted, and the stage message that starts the run is keyed
        by the alert's id (see the module). None: nothing to do (the same record again, after its
        event went out)."""
        t0 = time.perf_counter()
        cap = None
        if is_cap(raw):
            cap, alert = self._from_cap(raw)
        else:
            alert = parse_alert(raw, self.settings.max_text_chars)
            if alert.cap is not None:  # only a CAP document itself names a CAP origin
                alert = alert.model_copy(update={"cap": None})
        if alert.cap is not None and self.ledger.cancelled(alert.id, alert.status):
            raise NotAnimated("cancelled", "a CAP Cancel named this alert before it arrived",
                              alert.id)
        claimed = self.ledger.claim(alert, str(at) if at is not None else "", self.run)
        if claimed.claim is Claim.ALREADY_SENT:
            return None
        if claimed.claim is Claim.FINISHED:
            return claimed.ready
        if cap is not None:
            self.ledger.record_cap(alert.id, raw)  # its Update repeats the original's blocks
        return Started(StageMessage(
            alert=alert, stage=FIRST, run=self.run, seed=seed_for(alert.id),
            received_at=time.time(), traceparent=traceparent or new_trace(),
            seconds={"ingest": round(time.perf_counter() - t0, 4)}), claimed.first)

    def _from_cap(self, raw: bytes) -> tuple[CapAlert, Alert]:
        """A CAP document (1.2, 1.1 or 1.0): an Alert or Update is animated from its best info
        block; a Cancel stops the alerts it references that are its sender's own, of its own
        status; an Ack or Error is recorded, not animated.

        A Cancel may come before the alert it names: publishers key CAP messages by their
        identifier, so a Cancel and its alert are on different partitions, which Kafka does not
        order. Its marker then waits for the alert. A reference to another sender's alert is
        never marked (the alert id hashes the sender in, so no marker of one sender's Cancel
        names another's alert); who may write `alerts` at all is the broker's ACL."""
        cap = parse_cap(raw, self.settings.max_cap_bytes)
        if cap.msg_type == "Cancel":
            own = [cap_alert_id(r.sender, r.identifier, r.sent)
                   for r in cap.references if r.sender == cap.sender]
            foreign = [r.triple() for r in cap.references if r.sender != cap.sender]
            for alert_id in own:
                self.ledger.cancel(alert_id, by=cap.alert_id, status=cap.status)
            message = (f"a CAP Cancel ({cap.status}) from {cap.sender} of {len(own)} of its "
                       f"sender's alert(s): {', '.join(own) or 'none'}")
            if foreign:
                raise NotAnimated("cap_cancel_foreign", message + f"; not cancelled, another "
                                  f"sender's: {', '.join(foreign)}"[:4000], cap.alert_id)
            raise NotAnimated("cap_cancel", message, cap.alert_id)
        return cap, alert_to_animate(cap, self.settings.cap_languages,
                                     self.settings.max_text_chars)
