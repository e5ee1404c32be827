"""What is let in from the `alerts` topic, and how a run starts: an alert (JSON, or a CAP
document) is validated, its Kafka key checked, a CAP Cancel applied, and its id claimed in the
ledger, which tells a new alert from a redelivery and a re-publication. A new or unfinished
alert starts at the first stage; a finished one is answered with its stored result.
"""

from __future__ import annotations

import time

from alertanim.schemas import (Alert, AnimationReady, CapAlert, InvalidAlert, NotAnimated,
                               StageMessage, cap_alert_id, is_cap, parse_alert, parse_cap)
from alertanim.schemas.cap import alert_to_animate

from .emitter import Position
from .events import new_trace
from .ledger import Claim, Ledger, seed_for
from .topology import FIRST


class Ingest:
    def __init__(self, settings, ledger: Ledger, run: str):
        self.settings = settings
        self.ledger = ledger
        self.run = run

    def __call__(self, raw: bytes, at: Position | None = None, key: bytes | None = None,
                 traceparent: str | None = None) -> StageMessage | AnimationReady | None:
        """`key` is the Kafka record's key (b"" when it had none); None when the alert did not
        come from Kafka. From Kafka, the key must be the alert's id: the partition it picks is
        the one every copy of the alert, and every stage of it, goes through. None: nothing to
        do (the same record again, after its event went out)."""
        t0 = time.perf_counter()
        cap = None
        if is_cap(raw):
            cap, alert = self._from_cap(raw)
        else:
            alert = parse_alert(raw, self.settings.max_text_chars)
            if alert.cap is not None:  # only a CAP document itself names a CAP origin
                alert = alert.model_copy(update={"cap": None})
        if key is not None and key != alert.id.encode():
            raise InvalidAlert("key_mismatch", f"the record's key {key[:140]!r} is not the "
                               f"alert's id {alert.id!r}", alert.id)
        if alert.cap is not None and self.ledger.cancelled(alert.id):
            raise NotAnimated("cancelled", "a CAP Cancel named this alert before it arrived",
                              alert.id)
        claimed = self.ledger.claim(alert, str(at) if at is not None else "", self.run)
        if claimed.claim is Claim.ALREADY_SENT:
            return None
        if claimed.claim is Claim.FINISHED:
            return claimed.ready
        if cap is not None:
            self.ledger.record_cap(alert.id, raw)  # its Update repeats the original's blocks
        return StageMessage(alert=alert, stage=FIRST, run=self.run, seed=seed_for(alert.id),
                            received_at=time.time(), traceparent=traceparent or new_trace(),
                            seconds={"ingest": round(time.perf_counter() - t0, 4)})

    def _from_cap(self, raw: bytes) -> tuple[CapAlert, Alert]:
        """A CAP 1.2 document: an Alert or Update is animated from its best info block; a
        Cancel stops the alerts it references; an Ack or Error is recorded, not animated."""
        cap = parse_cap(raw, self.settings.max_cap_bytes)
        if cap.msg_type == "Cancel":
            ids = [cap_alert_id(r.sender, r.identifier, r.sent) for r in cap.references]
            for alert_id in ids:
                self.ledger.cancel(alert_id, by=cap.alert_id)
            raise NotAnimated("cap_cancel", f"a CAP Cancel of {len(ids)} alert(s): "
                              f"{', '.join(ids) or 'none referenced'}", cap.alert_id)
        return cap, alert_to_animate(cap, self.settings.cap_languages,
                                     self.settings.max_text_chars)
