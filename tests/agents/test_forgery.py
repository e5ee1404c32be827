"""Stage messages cannot take over an alert, without a broker: a message written to an
intermediate topic under a victim's id is believed only when its alert is the one the ledger
claimed under that id and its run is the worker's own; otherwise it ends as a failure record
that names the reason, and nothing of the victim's is read, written or sent for it. Outputs are
written once, so a legitimate redelivery rewrites nothing and still goes on.
(tests/stream/test_forgery.py tries the same over the real broker and S3 server.)"""

import asyncio
import hashlib
import json
import os
import shutil

import pytest

from alertanim.pipeline import graph
from alertanim.schemas import AnimationReady, FailureRecord, StageMessage
from alertanim.schemas.errors import REASONS

from tests.support.processor import drive, make, records

VICTIM = "victim-tornado"
TEXT = "A tornado warning is in effect for the county until 9 PM"


def files(root):
    """Every object under `root` (a LocalStore's directory): its key → (sha256, inode, mtime)."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".part"):
                continue
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = (hashlib.sha256(f.read()).hexdigest(),
                                                    st.st_ino, st.st_mtime_ns)
    return out


def stage_messages(proc, out) -> dict[str, bytes]:
    """Each stage's input message among what was sent, by stage."""
    prefix = proc.settings.topic_stage_prefix
    return {StageMessage.from_bytes(v).stage: v for t, _, v in out if t.startswith(prefix)}


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    """One alert run through every stage: (processor, sent, its stage messages, its ready event,
    the store's directory). Tests that change the store copy it first."""
    root = tmp_path_factory.mktemp("forgery")
    proc, sent = make(root)
    out = drive(proc, sent, json.dumps({"id": VICTIM, "text": TEXT}).encode())
    [(_, value)] = records(out, "ready")
    assert not records(out, "failed")
    return proc, sent, stage_messages(proc, out), AnimationReady.from_bytes(value), root


def forge(raw: bytes, **alert_changes) -> StageMessage:
    msg = StageMessage.from_bytes(raw)
    return msg.model_copy(update={"alert": msg.alert.model_copy(update=alert_changes)})


def refused(proc, sent, stage, msg: StageMessage) -> FailureRecord:
    """Process `msg` at `stage`; the one record it led to, which must be a failure record."""
    before = len(sent)
    asyncio.run(proc.process(stage, msg.to_bytes()))
    [(topic, key, value)] = sent[before:]
    assert topic == proc.settings.topic_failed
    record = FailureRecord.from_bytes(value)
    assert key == record.alert_id == msg.alert_id
    assert record.stage == stage and record.attempts == 1 and record.reason in REASONS
    return record


def test_a_copied_subject_message_with_new_text_and_run_is_refused_and_no_ready_follows(victim):
    """The attack tried on the real broker: the subject stage's message copied, its text made
    harmless and its run new. Before, the worker ran it and published a second `ready` for the
    real alert; now it is one failure record and nothing else."""
    proc, sent, messages, ready, root = victim
    before = files(root)
    msg = forge(messages["subject"], text="Nothing is happening, stay calm")
    msg = msg.model_copy(update={"run": "0123456789ab"})
    assert msg.run != ready.run
    record = refused(proc, sent, "subject", msg)
    assert record.reason == "foreign_run" and "0123456789ab" in record.message
    # the same copy with the worker's own run: its alert is not the one claimed under the id
    record = refused(proc, sent, "subject", msg.model_copy(update={"run": ready.run}))
    assert record.reason == "forged_message" and "other content" in record.message
    assert files(root) == before  # nothing of the victim's was written, not even rewritten


@pytest.mark.parametrize("stage", graph.NAMES)
def test_a_message_under_the_victims_id_with_other_content_is_refused_at_every_stage(victim,
                                                                                       stage):
    """A message for any stage, with the victim's id and run and image keys inside the
    victim's own folder (so the key check alone lets it through), but another alert's
    content: refused before its stage runs; the victim's images, renditions and report stay
    as they were, byte for byte."""
    proc, sent, messages, ready, root = victim
    before = files(root)
    msg = forge(messages[stage], text="Evacuate now: everything is on fire")
    assert msg.run == ready.run and msg.alert_id == VICTIM
    record = refused(proc, sent, stage, msg)
    assert record.reason == "forged_message"
    # other fields of the alert count too: its content hash is compared, not its id
    record = refused(proc, sent, stage, forge(messages[stage], severity="Minor"))
    assert record.reason == "forged_message"
    assert files(root) == before


def test_a_message_for_an_id_never_claimed_is_refused(victim):
    proc, sent, messages, _, root = victim
    msg = forge(messages["generate"], id="never-ingested")
    record = refused(proc, sent, "generate", msg)
    assert record.reason == "forged_message" and "no alert was claimed" in record.message
    assert not (root / "runs" / "never-ingested").exists()


def test_redeliveries_rewrite_nothing_and_go_on_with_the_same_keys(victim, tmp_path):
    """Every stage's message delivered again (a worker killed before its offset committed): no
    object is written again (same bytes, same file), each stage hands on the same message it
    handed on the first time, and the last stage, its event out, sends nothing."""
    _, _, messages, ready, root = victim
    shutil.copytree(root, tmp_path / "store")
    proc, sent = make(tmp_path / "store")
    before = files(tmp_path / "store")
    for stage in graph.NAMES[:-1]:
        start = len(sent)
        asyncio.run(proc.process(stage, messages[stage]))
        [(topic, key, value)] = sent[start:]
        nxt = graph.NEXT[stage]
        assert topic == proc.settings.stage_topic(nxt) and key == VICTIM
        again, first = StageMessage.from_bytes(value), StageMessage.from_bytes(messages[nxt])
        assert again.artifacts == first.artifacts  # the same keys and values downstream
    start = len(sent)
    asyncio.run(proc.process(graph.NAMES[-1], messages[graph.NAMES[-1]]))
    assert sent[start:] == []  # its event went out already
    assert files(tmp_path / "store") == before


def test_outputs_already_stored_are_kept_and_the_event_describes_them(victim, tmp_path):
    """A worker stopped after storing the renditions and before the completion: the next one
    runs the last stage again and writes nothing over them; its event describes the bytes the
    store holds (size and digests), not the ones it made."""
    _, _, messages, ready, root = victim
    store = tmp_path / "store"
    shutil.copytree(root, store)
    proc, sent = make(store)
    ledger = proc.adapter.ledger
    for key in (ledger.ready_key(VICTIM, ready.run), ledger.emitted_key(VICTIM, ready.run)):
        (store / key).unlink()
    gif = store / ledger.rendition_key(VICTIM, ready.run, "image/gif")
    first = b"GIF89a the first writer's bytes"
    gif.write_bytes(first)
    asyncio.run(proc.process(graph.NAMES[-1], messages[graph.NAMES[-1]]))
    [(_, value)] = records(sent, "ready")
    event = AnimationReady.from_bytes(value)
    [rendition] = [r for r in event.renditions if r.media_type == "image/gif"]
    assert gif.read_bytes() == first
    assert rendition.bytes == len(first) and rendition.sha256 == hashlib.sha256(first).hexdigest()
    assert json.loads((store / ledger.ready_key(VICTIM, ready.run)).read_bytes())[
        "renditions"] == json.loads(value)["renditions"]


def test_a_completion_another_copy_stored_first_is_the_one_sent(victim, tmp_path):
    """Two copies of the last stage's message racing: the one that finds the completion stored
    when it comes to store its own sends the stored one (and only if it is not out yet)."""
    _, _, messages, ready, root = victim
    store = tmp_path / "store"
    shutil.copytree(root, store)
    proc, sent = make(store)
    ledger = proc.adapter.ledger
    (store / ledger.emitted_key(VICTIM, ready.run)).unlink()
    stored = (store / ledger.ready_key(VICTIM, ready.run)).read_bytes()
    real, calls = ledger.finished, []

    def not_yet_then_real(alert_id, run):  # the first look: not stored yet (the race)
        calls.append(alert_id)
        return None if len(calls) == 1 else real(alert_id, run)
    ledger.finished = not_yet_then_real
    asyncio.run(proc.process(graph.NAMES[-1], messages[graph.NAMES[-1]]))
    [(_, value)] = records(sent, "ready")
    event = AnimationReady.from_bytes(value)
    assert len(calls) == 2 and event.completed_at == ready.completed_at
    assert (store / ledger.ready_key(VICTIM, ready.run)).read_bytes() == stored
    assert ledger.emitted(VICTIM, ready.run)
