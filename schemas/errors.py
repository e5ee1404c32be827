"""One error family for the whole project, each error carrying the stable reason code that a
failure record on the `failed` topic reports.

Third-party errors are mapped into it at the edge (the object store, the broker, model loading),
so the code that decides what to do with an error reads two fields, `reason` and `transient`,
instead of matching class names.
"""

from __future__ import annotations


class AlertanimError(Exception):
    """Root of every error the project raises on purpose."""

    reason: str = "stage_error"
    transient: bool = False  # waiting and trying again can succeed

    def __init__(self, message: str, *, reason: str | None = None,
                 alert_id: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.alert_id = alert_id


class InvalidInput(AlertanimError):
    """Input that can never be processed; retrying cannot help."""

    reason = "invalid_input"


class InvalidAlert(InvalidInput):
    """An `alerts` message refused: not_utf8, not_json, not_object, missing_field, empty_text,
    text_too_long, invalid_field, unknown_schema_version, duplicate_id_conflict, reserved_id;
    and for CAP XML
    (schemas/cap.py): too_large, not_xml, xml_entities, xml_external_entity, xml_dtd, not_cap,
    unsupported_cap_version, invalid_cap, cap_msg_type."""

    def __init__(self, reason: str, message: str, alert_id: str | None = None):
        super().__init__(message, reason=reason, alert_id=alert_id)


class NotAnimated(InvalidInput):
    """Input that says, by itself or by a later message, that it is not to be animated: a CAP
    Cancel (cap_cancel, or cap_cancel_foreign when it names another sender's alerts), or an alert
    such a Cancel named (cancelled), refused on arrival or at
    its next stage."""

    def __init__(self, reason: str, message: str, alert_id: str | None = None):
        super().__init__(message, reason=reason, alert_id=alert_id)


class InvalidMessage(InvalidInput):
    """A message on an intermediate topic that does not fit the stage graph: not a stage
    message, a stage that does not exist, a missing input, a key the ledger would not derive;
    or one that would take over an alert: its alert is not the one the ledger claimed under its
    id (forged_message), or its run is not the worker's own (foreign_run)."""

    reason = "invalid_message"


class ModelsUnavailable(AlertanimError):
    """A checkpoint could not be loaded (offline, missing, or not a model directory)."""

    reason = "models_unavailable"


class StoreUnavailable(AlertanimError):
    """The object store could not be reached or answered with a server error."""

    reason = "store_unavailable"
    transient = True


class StoreRefused(AlertanimError):
    """The object store refused the request (credentials, permissions, a missing bucket)."""

    reason = "store_refused"


class ArtifactMissing(AlertanimError):
    """A message names an object that is not in the store."""

    reason = "artifact_missing"


class SendRefused(AlertanimError):
    """The broker will never take this record (too large, not authorised for the topic)."""

    reason = "send_refused"


class RetriesExhausted(AlertanimError):
    """The retry policy gave up on `error` after `attempts` tries. Its reason is the error's own,
    so a failure record reports what went wrong, not that retrying stopped."""

    def __init__(self, error: BaseException, attempts: int):
        super().__init__(f"gave up after {attempts} attempt(s): {error!r}",
                         alert_id=getattr(error, "alert_id", None))
        self.error, self.attempts = error, attempts
        if isinstance(error, AlertanimError):
            self.reason, self.transient = error.reason, error.transient


class ConfigError(AlertanimError):
    """Settings that cannot work together."""

    reason = "config_error"


class BrokerCheckFailed(AlertanimError):
    """Found before a worker starts (agents/preflight.py): the broker cannot be used as
    configured. `exit_code` is how the worker ends; `reason` is broker_refused (authentication or
    the broker's certificate refused), broker_tls_files (the TLS files cannot be loaded) or
    broker_unavailable (no broker answered in time: `transient`). Never a failure record, so
    these reasons are not in REASONS."""

    reason = "broker_refused"

    def __init__(self, message: str, exit_code: int, *, reason: str | None = None,
                 transient: bool = False):
        super().__init__(message, reason=reason)
        self.exit_code, self.transient = exit_code, transient


REASONS = {
    "not_utf8": "the message is not UTF-8 (the payload is kept as base64)",
    "not_json": "the message is not JSON (or nested too deeply to read)",
    "not_object": "the message is JSON but not an object",
    "missing_field": "a required field is missing",
    "empty_text": "the alert's text is empty",
    "text_too_long": "the alert's text is longer than MAX_TEXT_CHARS",
    "invalid_field": "a field has the wrong type or an invalid value",
    "unknown_schema_version": "a schema_version this worker does not read",
    "duplicate_id_conflict": "an alert id reused for other content",
    "reserved_id": "a JSON alert whose id begins with cap-, the prefix of alerts read from CAP",
    "too_large": "a CAP message longer than the byte limit, refused before it is parsed",
    "not_xml": "a CAP message that is not well-formed XML in its declared encoding",
    "xml_entities": "XML that declares entities (billion laughs, quadratic blowup): never expanded",
    "xml_external_entity": "XML that declares or references an external entity: never fetched",
    "xml_dtd": "XML with a document type declaration (CAP has none): never read",
    "not_cap": "XML whose root is not a CAP 1.0, 1.1 or 1.2 <alert>",
    "unsupported_cap_version": "a CAP <alert> in the namespace of a version not read here "
                               "(CAP 1.0, 1.1 and 1.2 are read)",
    "invalid_cap": "a CAP element missing, repeated or outside CAP's values (the detail names it)",
    "cap_msg_type": "a CAP Cancel, Ack or Error, which announces nothing to animate",
    "cap_cancel": "a CAP Cancel: the alerts it references (its sender's own, of its status) are "
                  "not animated (the message names them)",
    "cap_cancel_foreign": "a CAP Cancel referencing another sender's alerts: those go on; its "
                          "sender's own, of its status, are not animated (the message names both)",
    "cancelled": "a CAP Cancel named this alert: no animation; a run in flight stops at its next stage",
    "invalid_message": "an intermediate message that does not fit the stage graph",
    "forged_message": "an intermediate message whose alert is not the one the ledger claimed under "
                      "its id (other content, or no claim): refused, the alert named goes on",
    "foreign_run": "an intermediate message for a run (method settings, models, version) other "
                   "than the worker's own: refused, nothing of that run is written or sent",
    "stage_error": "a stage kept failing after its retries",
    "transient_error": "a stage kept failing with errors that waiting could fix, past the deadline",
    "store_unavailable": "the object store stayed unreachable past the retry deadline",
    "store_refused": "the object store refused the request",
    "artifact_missing": "a message named an object that is not in the store",
    "send_refused": "the broker refused the record for good; the record says what was cut",
    "models_unavailable": "the worker could not load its models",
}
