"""CAP XML (1.2, 1.1 and 1.0) on the `alerts` topic: read it without trusting it, make an
`Alert` of it, and answer it with the animation, in the version it came in.

Which reader: a message whose first byte, after an optional UTF-8 byte order mark and XML
whitespace (space, tab, CR, LF), is "<" is XML and goes to `parse_cap`; anything else goes to
`parse_alert` (a JSON alert starts with "{"). `is_cap` is that rule. XML in UTF-16 is not sniffed
as CAP and is then refused as not UTF-8: CAP publishers send UTF-8.

Reading: defusedxml parses, following XML's rules on encodings (not_xml when the document is not
well-formed, or not in the encoding it declares, or in one expat cannot read). The document is
refused, with nothing expanded, fetched or read, when it declares entities (billion laughs,
quadratic blowup: xml_entities), declares or references an external entity (xml_external_entity)
or has a document type declaration (xml_dtd; an entity declared inside one is reported as what it
is): defusedxml's forbid_entities, forbid_external and forbid_dtd. Then the root must be the
<alert> of CAP 1.2, 1.1 or 1.0 (told by its namespace; another version of CAP's is
unsupported_cap_version), with the elements that version requires, each at most once where it
allows one, and values inside that version's enumerations; the error's detail names the element
("alert/info[2]/urgency"). Elements of other namespaces and ones the version does not define are
ignored, as is <derefUri> (inline content: the copy in `cap_update` keeps it). Every string and
list is bounded. Text is stripped of surrounding whitespace, and an empty optional element counts
as absent, an empty <eventCode> too. CAP's dateTime is the XSD's: an explicit offset, no "Z".
Beyond the XSD, sender and identifier must follow CAP's text (no whitespace, commas, "<" or "&"),
<event> must not be empty, and <references> must hold sender,identifier,sent triples.

Older versions, mapped onto the one model (`CapAlert.version` says which): CAP 1.1 has no
"Avoid" or "AllClear" <responseType> and its <resource> may lack <mimeType>. CAP 1.0 (namespace
http://www.incident.com/cap/1.0) also has no <responseType> (ignored as undefined), no "Draft"
status, no "CBRNE" category and no "Observed" certainty; its "Very Likely" certainty is read as
"Likely", as CAP 1.1 says it is to be treated; its <scope> and <category> are optional; its
<password> is never read nor repeated; and its <eventCode>, <parameter> and <geocode> are
"valueName=value" strings, read as pairs (one with no "=" names nothing and is dropped).

Identity: CAP names a message by sender, identifier and sent. `cap_alert_id` derives the Alert id
from those three, so one message published twice is one alert.

Answering: `cap_update` builds the CAP Update, in the original's version, that references the
original and repeats its <info> blocks, each with the animation's renditions added as <resource>s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Literal
from xml.etree import ElementTree as ET

from defusedxml import (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden,
                        NotSupportedError)
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import ConfigDict, Field, ValidationError, field_validator

from ._base import Record
from .alert import (CAP_ID_PREFIX, DEFAULT_MAX_CHARS, Alert, CapDateTime, CapRef, CapToken,
                    EventCode, cap_datetime)
from .errors import InvalidAlert

__all__ = ["CAP_10_NS", "CAP_11_NS", "CAP_NS", "CAP_VERSIONS", "CapAlert", "CapArea", "CapInfo",
           "CapRef", "CapResource", "CapValue",
           "DEFAULT_MAX_CAP_BYTES", "alert_to_animate", "cap_alert_id", "cap_datetime",
           "cap_update", "choose_info", "is_cap", "parse_cap", "to_alert"]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_11_NS = "urn:oasis:names:tc:emergency:cap:1.1"
CAP_10_NS = "http://www.incident.com/cap/1.0"  # CAP 1.0's own namespace, as its XSD declares
CAP_VERSIONS = {CAP_NS: "1.2", CAP_11_NS: "1.1", CAP_10_NS: "1.0"}  # namespace: version
_NAMESPACES = {version: ns for ns, version in CAP_VERSIONS.items()}
_OASIS_CAP = "urn:oasis:names:tc:emergency:cap:"  # a version of CAP's not read here starts so
DEFAULT_MAX_CAP_BYTES = 1_048_576  # a broker's default largest record
_AREA_CHARS = 2_000  # Alert.area's bound

Status = Literal["Actual", "Exercise", "System", "Test", "Draft"]
MsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
Scope = Literal["Public", "Restricted", "Private"]
Category = Literal["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                   "Transport", "Infra", "CBRNE", "Other"]
ResponseType = Literal["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess",
                       "AllClear", "None"]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
Version = Literal["1.0", "1.1", "1.2"]

# What an older version's enumerations lack beside CAP 1.2's: refused, naming the element.
_NOT_IN = {
    "1.2": {},
    "1.1": {"responseType": {"Avoid", "AllClear"}},
    "1.0": {"status": {"Draft"}, "category": {"CBRNE"}, "certainty": {"Observed"}},
}

# Bounds for hostile input; generous beside what warning systems publish (an NWS description
# runs to a few thousand characters, a zone list in <areaDesc> to a thousand or two).
Name = Annotated[str, Field(max_length=256)]
Line = Annotated[str, Field(max_length=2_000)]
Uri = Annotated[str, Field(max_length=8_000)]  # presigned URLs with session tokens run long
Text = Annotated[str, Field(max_length=100_000)]
Language = Annotated[str, Field(max_length=35, pattern=r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")]

_INTEGER = re.compile(r"\+?[0-9]{1,18}")
_DECIMAL = re.compile(r"[-+]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})")


class _CapRecord(Record):
    # Python names, aliased to CAP's element names: a model is read from CAP's names, and a
    # validation error names the element.
    model_config = ConfigDict(populate_by_name=True)


class CapValue(_CapRecord):
    """<parameter> and <geocode>: a system-specific name and value, e.g. "UGC", "OKC027"."""

    value_name: Name = Field(alias="valueName")
    value: Annotated[str, Field(max_length=10_000)]


class CapResource(_CapRecord):
    """<resource>: a file that goes with an <info>, here an animation's rendition."""

    resource_desc: Line = Field(alias="resourceDesc")
    mime_type: Name = Field(alias="mimeType")
    size: int | None = Field(default=None, ge=0)  # bytes
    uri: Uri | None = None
    digest: Name | None = None  # SHA-1, hex

    @field_validator("size", mode="before")
    @classmethod
    def _size_from_text(cls, v):
        return int(v) if isinstance(v, str) and _INTEGER.fullmatch(v) else v

    @classmethod
    def of(cls, data: bytes, mime_type: str, uri: str, desc: str) -> CapResource:
        # CAP 1.2 specifies SHA-1 for <digest>: an integrity check, not a security one.
        return cls(resource_desc=desc, mime_type=mime_type, size=len(data), uri=uri,
                   digest=hashlib.sha1(data, usedforsecurity=False).hexdigest())


class CapArea(_CapRecord):
    """<area>: where the info applies, described and as shapes and codes."""

    area_desc: Annotated[str, Field(max_length=10_000)] = Field(alias="areaDesc")
    polygons: list[Text] = Field(default_factory=list, alias="polygon", max_length=256)
    circles: list[Line] = Field(default_factory=list, alias="circle", max_length=256)
    geocodes: list[CapValue] = Field(default_factory=list, alias="geocode", max_length=2_048)
    altitude: float | None = None  # feet above mean sea level
    ceiling: float | None = None

    @field_validator("altitude", "ceiling", mode="before")
    @classmethod
    def _decimal_from_text(cls, v):
        return float(v) if isinstance(v, str) and _DECIMAL.fullmatch(v) else v


class CapInfo(_CapRecord):
    """<info>: the event in one language, for one audience."""

    language: Language = "en-US"
    categories: list[Category] = Field(alias="category", min_length=1, max_length=12)
    event: Annotated[str, Field(min_length=1, max_length=256)]
    response_types: list[ResponseType] = Field(default_factory=list, alias="responseType",
                                               max_length=9)
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    audience: Line | None = None
    event_codes: list[EventCode] = Field(default_factory=list, alias="eventCode", max_length=32)
    effective: CapDateTime | None = None
    onset: CapDateTime | None = None
    expires: CapDateTime | None = None
    sender_name: Line | None = Field(default=None, alias="senderName")
    headline: Line | None = None
    description: Text | None = None
    instruction: Text | None = None
    web: Uri | None = None
    contact: Line | None = None
    parameters: list[CapValue] = Field(default_factory=list, alias="parameter", max_length=256)
    resources: list[CapResource] = Field(default_factory=list, alias="resource", max_length=64)
    areas: list[CapArea] = Field(default_factory=list, alias="area", max_length=256)


class _OlderResource(CapResource):
    mime_type: Name | None = Field(default=None, alias="mimeType")  # optional before CAP 1.2


class _CapInfo11(CapInfo):
    resources: list[_OlderResource] = Field(default_factory=list, alias="resource", max_length=64)


class _CapInfo10(_CapInfo11):
    categories: list[Category] = Field(default_factory=list, alias="category", max_length=12)


class CapAlert(_CapRecord):
    """One CAP <alert>, of CAP 1.2 or, mapped onto it, 1.1 or 1.0 (`version`). `sent` is the
    string as published (it is part of the identity); `sent_at` is the instant."""

    identifier: CapToken
    sender: CapToken
    sent: CapDateTime
    status: Status
    msg_type: MsgType = Field(alias="msgType")
    source: Line | None = None
    scope: Scope
    restriction: Line | None = None
    addresses: list[Name] = Field(default_factory=list, max_length=1_024)
    codes: list[Line] = Field(default_factory=list, alias="code", max_length=64)
    note: Text | None = None
    references: list[CapRef] = Field(default_factory=list, max_length=256)
    incidents: list[Name] = Field(default_factory=list, max_length=256)
    infos: list[CapInfo] = Field(default_factory=list, alias="info", max_length=64)
    version: Version = "1.2"

    @property
    def sent_at(self) -> datetime:
        return cap_datetime(self.sent)

    @property
    def ref(self) -> CapRef:
        return CapRef(sender=self.sender, identifier=self.identifier, sent=self.sent)

    @property
    def alert_id(self) -> str:
        return cap_alert_id(self.sender, self.identifier, self.sent)


class _CapAlert11(CapAlert):
    infos: list[_CapInfo11] = Field(default_factory=list, alias="info", max_length=64)


class _CapAlert10(CapAlert):
    scope: Scope | None = None  # optional in CAP 1.0
    infos: list[_CapInfo10] = Field(default_factory=list, alias="info", max_length=64)


_MODELS = {"1.2": CapAlert, "1.1": _CapAlert11, "1.0": _CapAlert10}


def cap_alert_id(sender: str, identifier: str, sent: str) -> str:
    """The Alert id of the CAP message `sender`, `identifier`, `sent` (as published): "cap-" and
    40 hex digits of their SHA-256, so one message published twice is one alert."""
    # CAP forbids commas in all three, so the joined form is unambiguous.
    return CAP_ID_PREFIX + hashlib.sha256(f"{sender},{identifier},{sent}".encode()).hexdigest()[:40]


def is_cap(raw: bytes) -> bool:
    """Whether an `alerts` message is XML (CAP) rather than a JSON alert; see the module."""
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    return body.lstrip(b" \t\r\n")[:1] == b"<"


def parse_cap(raw: bytes, max_bytes: int = DEFAULT_MAX_CAP_BYTES) -> CapAlert:
    """Read one CAP 1.2, 1.1 or 1.0 message, or raise InvalidAlert with the reason (see the
    module)."""
    if len(raw) > max_bytes:
        raise InvalidAlert("too_large", f"message has {len(raw)} bytes; the limit is {max_bytes}")
    return _cap_alert(_read(raw))


def choose_info(cap: CapAlert, preference: Sequence[str]) -> CapInfo | None:
    """The <info> to animate: the first language of `preference` that an info is in, compared
    by primary subtag ("en" and "en-GB" both take "en-US"); else the first info; None if none."""
    for tag in preference:
        wanted = _primary(tag)
        for info in cap.infos:
            if _primary(info.language) == wanted:
                return info
    return cap.infos[0] if cap.infos else None


def to_alert(cap: CapAlert, info: CapInfo, max_chars: int = DEFAULT_MAX_CHARS) -> Alert:
    """The Alert to animate for `info` of `cap`. Its text is the headline, description and
    instruction, cut at a word boundary to `max_chars`; an info with none of them is its event.
    A Cancel, Ack or Error is refused (cap_msg_type): it announces nothing to animate."""
    if cap.msg_type not in ("Alert", "Update"):
        raise InvalidAlert("cap_msg_type", f"a CAP {cap.msg_type} announces nothing to animate",
                           cap.alert_id)
    text = "\n\n".join(t for t in (info.headline, info.description, info.instruction) if t)
    area = _cut("; ".join(a.area_desc for a in info.areas), _AREA_CHARS)
    return Alert(id=cap.alert_id, text=_cut(text or info.event, max_chars),
                 language=info.language, sent=cap.sent_at, area=area or None,
                 severity=info.severity, event=info.event, event_codes=info.event_codes,
                 urgency=info.urgency, certainty=info.certainty, status=cap.status,
                 msg_type=cap.msg_type, cap=cap.ref, scope=cap.scope)


def alert_to_animate(cap: CapAlert, preference: Sequence[str],
                     max_chars: int = DEFAULT_MAX_CHARS) -> Alert:
    """The Alert an Alert or Update message is animated as: its info block chosen by
    `preference` (`choose_info`), made into an Alert (`to_alert`). A message with no info block
    is refused (invalid_cap); a Cancel, Ack or Error too (cap_msg_type)."""
    info = choose_info(cap, preference)
    if info is None and cap.msg_type in ("Alert", "Update"):
        raise InvalidAlert("invalid_cap", "a CAP message with no <info> block to animate",
                           cap.alert_id)
    return to_alert(cap, info, max_chars)


# How an Update is made smaller when it would not fit `max_bytes`, in order: the renditions in
# the animated <info> only; that <info> alone; that <info> alone without its <area>s. What is
# left out is in the original, which the Update references.
UPDATE_PLANS = ("every info", "resources in the animated info", "the animated info alone",
                "the animated info without its areas")


def cap_update(original: bytes, resources: Sequence[CapResource], *, sender: str,
               identifier: str, sent: datetime | str, note: str | None = None,
               max_bytes: int | None = None, languages: Sequence[str] = ()) -> bytes:
    """The CAP Update that answers `original` (a message `parse_cap` accepts) with `resources`,
    in the original's CAP version (1.2, 1.1 or 1.0) and valid against that version's schema: it
    references the original, keeps its status, scope, restriction, addresses and incidents (not
    CAP 1.0's password), and repeats its <info> blocks as published, each with `resources`
    added after its own and before its <area>s. `sent` is a CAP dateTime or an aware datetime;
    sender, identifier or sent that CAP would not accept raise ValueError.

    With `max_bytes`, an Update longer than that is made again by the next of UPDATE_PLANS
    until one fits; the animated <info> is the one `choose_info` takes for `languages`. One
    that fits by none raises ValueError."""
    root = _read(original)
    cap = _cap_alert(root)
    ns = _NAMESPACES[cap.version]
    if isinstance(sent, str):
        cap_datetime(sent, strict=True)  # what we write keeps to CAP's own form
    own = CapRef(sender=sender, identifier=identifier,
                 sent=sent if isinstance(sent, str) else _cap_time(sent))
    infos = root.findall(_q("info", ns))
    chosen = choose_info(cap, languages)
    # the element of the block choose_info took (by identity: two blocks may be equal)
    animated = next((e for e, info in zip(infos, cap.infos) if info is chosen), None)
    for plan in UPDATE_PLANS:
        out = ET.Element(_q("alert", ns))
        for name, text in (("identifier", own.identifier), ("sender", own.sender),
                           ("sent", own.sent), ("status", cap.status), ("msgType", "Update"),
                           ("scope", cap.scope)):
            if text is not None:  # only CAP 1.0's scope may be absent
                ET.SubElement(out, _q(name, ns)).text = text
        for name in ("restriction", "addresses"):
            if (element := root.find(_q(name, ns))) is not None:
                out.append(_copy(element, ns, cap.version))
        if note is not None:
            ET.SubElement(out, _q("note", ns)).text = note
        ET.SubElement(out, _q("references", ns)).text = cap.ref.triple()
        if (element := root.find(_q("incidents", ns))) is not None:
            out.append(_copy(element, ns, cap.version))
        for info in infos:
            if plan in UPDATE_PLANS[2:] and info is not animated:
                continue
            copy = _copy(info, ns, cap.version)
            if plan == UPDATE_PLANS[3]:
                for area in copy.findall(_q("area", ns)):
                    copy.remove(area)
            if plan == UPDATE_PLANS[0] or info is animated:
                at = next((i for i, child in enumerate(copy) if child.tag == _q("area", ns)),
                          len(copy))
                for offset, resource in enumerate(resources):
                    copy.insert(at + offset, _resource_element(resource, ns))
            out.append(copy)
        ET.indent(out)
        update = ET.tostring(out, encoding="utf-8", xml_declaration=True, default_namespace=ns)
        if max_bytes is None or len(update) <= max_bytes or animated is None:
            break
    if max_bytes is not None and len(update) > max_bytes:
        raise ValueError(f"the CAP Update has {len(update)} bytes even as {plan!r}; the limit is "
                         f"{max_bytes}")
    return update


# --- reading -------------------------------------------------------------------------------------

# Bounds checked while the document is read, element by element, so a flood of elements is cut
# at the first one past a bound instead of after all became a tree and the tree a model: how
# deep elements nest (CAP's deepest is alert/info/area/geocode/value; an XML Signature in
# alert goes 7 deeper), how many a document holds, and how many of each kind one parent holds
# (the model's own limits, below, by local name: the same in CAP 1.0, 1.1 and 1.2).
MAX_CAP_DEPTH = 24
MAX_CAP_ELEMENTS = 20_000  # a large real alert (thousands of geocodes) holds a few thousand
_MAX_CHILDREN = {
    ("alert", "info"): 64, ("alert", "code"): 64,
    ("info", "category"): 12, ("info", "responseType"): 9, ("info", "eventCode"): 32,
    ("info", "parameter"): 256, ("info", "resource"): 64, ("info", "area"): 256,
    ("area", "polygon"): 256, ("area", "circle"): 256, ("area", "geocode"): 2_048,
}


class _BoundedBuilder(ET.TreeBuilder):
    """An ElementTree builder that refuses a document past the bounds above as it is read."""

    def __init__(self):
        super().__init__()
        # each open element: its local name, its place among its like-named siblings, and its
        # children counted by local name
        self._path: list[tuple[str, int, dict[str, int]]] = []
        self._elements = 0

    def start(self, tag, attrs):
        name = tag.rpartition("}")[2]
        self._elements += 1
        if self._elements > MAX_CAP_ELEMENTS:
            raise _Refused(f"the document has more than {MAX_CAP_ELEMENTS} elements")
        if len(self._path) >= MAX_CAP_DEPTH:
            raise _Refused(f"{self._where()}: elements nested more than {MAX_CAP_DEPTH} deep")
        n = 1
        if self._path:
            parent, _, counts = self._path[-1]
            counts[name] = n = counts.get(name, 0) + 1
            bound = _MAX_CHILDREN.get((parent, name))
            if bound is not None and n > bound and len(self._path) <= 3:
                raise _Refused(f"{self._where()}/{name}: at most {bound} in one <{parent}>")
        self._path.append((name, n, {}))
        return super().start(tag, attrs)

    def end(self, tag):
        self._path.pop()
        return super().end(tag)

    def _where(self) -> str:
        return "/".join(name if depth == 0 else f"{name}[{n}]"
                        for depth, (name, n, _) in enumerate(self._path))


def _parse(raw: bytes, forbid_dtd: bool) -> ET.Element:
    parser = DefusedXMLParser(target=_BoundedBuilder(), forbid_dtd=forbid_dtd,
                              forbid_entities=True, forbid_external=True)
    parser.feed(raw)
    return parser.close()


def _read(raw: bytes) -> ET.Element:
    try:
        try:
            return _parse(raw, forbid_dtd=True)
        except DTDForbidden as exc:
            if exc.sysid or exc.pubid:
                raise  # an external DTD: refused as it is, never fetched
            # An internal one is refused when it is first seen, before what it declares. Read
            # again with it allowed, entity declarations and external references still refused,
            # so an entity declared inside it is reported as the entity it is; a DTD that
            # declares none stays refused as a DTD, however the rest reads.
            try:
                _parse(raw, forbid_dtd=False)
            except (EntitiesForbidden, ExternalReferenceForbidden):
                raise
            except Exception:  # noqa: BLE001 - not an entity: the DTD is the reason
                pass
            raise exc from None
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise InvalidAlert("xml_external_entity",
                               f"the document declares the external entity {_clip(exc.name)} "
                               f"({_clip(exc.sysid or exc.pubid)}); it is not fetched") from None
        raise InvalidAlert("xml_entities", f"the document declares the entity {_clip(exc.name)}; "
                                           f"entities are not expanded") from None
    except ExternalReferenceForbidden as exc:
        raise InvalidAlert("xml_external_entity",
                           f"the document references the external entity "
                           f"{_clip(exc.sysid or exc.pubid)}; it is not fetched") from None
    except DTDForbidden as exc:
        where = f" ({_clip(exc.sysid or exc.pubid)})" if exc.sysid or exc.pubid else ""
        raise InvalidAlert("xml_dtd", f"the document has a document type declaration "
                                      f"{_clip(exc.name)}{where}; CAP has none") from None
    except NotSupportedError as exc:
        # defusedxml cannot check something (its ElementTree reader raises this nowhere today):
        # refused, and not as the encoding error that the last clause would call it
        raise InvalidAlert("not_xml", f"the XML reader refused the message: {_clip(str(exc))}") \
            from None
    except _Refused as exc:
        raise InvalidAlert("invalid_cap", str(exc)) from None
    except ET.ParseError as exc:
        raise InvalidAlert("not_xml", f"message is not well-formed XML: {_clip(str(exc))}") \
            from None
    except (LookupError, ValueError) as exc:
        # The declared encoding: unknown, not a text encoding, or multi-byte beyond UTF-8/16.
        # (defusedxml's own refusals are ValueErrors too: caught above.)
        raise InvalidAlert("not_xml", f"message's declared encoding cannot be read: "
                                      f"{_clip(str(exc))}") from None


def _version(root: ET.Element) -> tuple[str, str]:
    """The namespace and CAP version of a CAP document's root, or InvalidAlert."""
    namespace, _, name = root.tag[1:].partition("}") if root.tag[:1] == "{" else ("", "", root.tag)
    if name == "alert" and namespace in CAP_VERSIONS:
        return namespace, CAP_VERSIONS[namespace]
    if name == "alert" and namespace.startswith(_OASIS_CAP):
        raise InvalidAlert("unsupported_cap_version",
                           f"the namespace {_clip(namespace)} is no CAP version read here: CAP "
                           f"1.2 ({CAP_NS}), 1.1 ({CAP_11_NS}) and 1.0 ({CAP_10_NS}) are")
    raise InvalidAlert("not_cap", f"the root element is {_clip(root.tag)}, not the <alert> of "
                                  f"CAP 1.2 ({CAP_NS}), 1.1 or 1.0")


def _cap_alert(root: ET.Element) -> CapAlert:
    ns, version = _version(root)
    try:
        fields = _alert_fields(root, ns, version)
        fields["version"] = version
        return _MODELS[version].model_validate(fields)
    except _Refused as exc:
        raise InvalidAlert("invalid_cap", str(exc), _identity(root, ns)) from None
    except ValidationError as exc:
        raise InvalidAlert("invalid_cap", _describe(exc), _identity(root, ns)) from None


def _alert_fields(root: ET.Element, ns: str, version: str) -> dict:
    children = _grouped(root, ns)
    one = _singles(children, "alert", ("identifier", "sender", "sent", "status", "msgType",
                                       "source", "scope", "restriction", "addresses", "note",
                                       "references", "incidents"))
    _in_version(version, "status", one.get("status"), "alert/status")
    one["addresses"] = _words(one.get("addresses", ""))
    one["incidents"] = _words(one.get("incidents", ""))
    one["references"] = [_reference(t) for t in one.get("references", "").split()]
    one["code"] = [_text(c) for c in children.get("code", [])]
    one["info"] = [_info_fields(info, f"alert/info[{n}]", ns, version)
                   for n, info in enumerate(children.get("info", []), 1)]
    return one


def _info_fields(info: ET.Element, where: str, ns: str, version: str) -> dict:
    children = _grouped(info, ns)
    one = _singles(children, where, ("language", "event", "urgency", "severity", "certainty",
                                     "audience", "effective", "onset", "expires", "senderName",
                                     "headline", "description", "instruction", "web",
                                     "contact"))
    if version == "1.0" and one.get("certainty") == "Very Likely":
        one["certainty"] = "Likely"  # CAP 1.1: the deprecated value is treated as "Likely"
    _in_version(version, "certainty", one.get("certainty"), f"{where}/certainty")
    one["category"] = [_text(c) for c in children.get("category", [])]
    one["responseType"] = ([_text(c) for c in children.get("responseType", [])]
                           if version != "1.0" else [])  # CAP 1.0 has none
    for name in ("category", "responseType"):
        for n, value in enumerate(one[name], 1):
            _in_version(version, name, value, f"{where}/{name}[{n}]")
    codes = [_pair(code, f"{where}/eventCode[{n}]", ns, version)
             for n, code in enumerate(children.get("eventCode", []), 1)]
    # An empty code names nothing; dropping it keeps an otherwise valid alert.
    one["eventCode"] = [code for code in codes if code.get("value_name") and code["value"]]
    one["parameter"] = _pairs(children.get("parameter", []), f"{where}/parameter", ns, version)
    one["resource"] = [
        _singles(_grouped(r, ns), f"{where}/resource[{n}]",
                 ("resourceDesc", "mimeType", "size", "uri", "digest"))
        for n, r in enumerate(children.get("resource", []), 1)]
    one["area"] = [_area_fields(a, f"{where}/area[{n}]", ns, version)
                   for n, a in enumerate(children.get("area", []), 1)]
    return one


def _area_fields(area: ET.Element, where: str, ns: str, version: str) -> dict:
    children = _grouped(area, ns)
    one = _singles(children, where, ("areaDesc", "altitude", "ceiling"))
    one["polygon"] = [_text(p) for p in children.get("polygon", [])]
    one["circle"] = [_text(c) for c in children.get("circle", [])]
    one["geocode"] = _pairs(children.get("geocode", []), f"{where}/geocode", ns, version)
    return one


def _grouped(element: ET.Element, ns: str) -> dict[str, list[ET.Element]]:
    """The CAP children of `element` by local name, in document order."""
    prefix = f"{{{ns}}}"
    groups: dict[str, list[ET.Element]] = {}
    for child in element:
        if isinstance(child.tag, str) and child.tag.startswith(prefix):
            groups.setdefault(child.tag[len(prefix):], []).append(child)
    return groups


class _Refused(Exception):
    """An element the version allows once appears more often, or holds a value of another
    version's."""


def _in_version(version: str, name: str, value: str | None, where: str) -> None:
    if value is not None and value in _NOT_IN[version].get(name, ()):
        raise _Refused(f"{where}: {_clip(value)} is not a CAP {version} value")


def _singles(children: dict[str, list[ET.Element]], where: str, names: Sequence[str]) -> dict:
    """The text of each element CAP allows once, leaving out absent and empty ones."""
    found = {}
    for name in names:
        elements = children.get(name, [])
        if len(elements) > 1:
            raise _Refused(f"{where}/{name}: appears {len(elements)} times; CAP allows one")
        if elements and (text := _text(elements[0])):
            found[name] = text
    return found


def _pair(element: ET.Element, where: str, ns: str, version: str) -> dict:
    if version == "1.0":  # "valueName=value"
        name, equals, value = _text(element).partition("=")
        return {"value_name": name.strip(), "value": value.strip()} if equals else {"value": ""}
    one = _singles(_grouped(element, ns), where, ("valueName", "value"))
    pair = {"value": one.get("value", "")}  # an empty value is still a value
    if "valueName" in one:
        pair["value_name"] = one["valueName"]
    return pair


def _pairs(elements: list[ET.Element], where: str, ns: str, version: str) -> list[dict]:
    pairs = [_pair(e, f"{where}[{n}]", ns, version) for n, e in enumerate(elements, 1)]
    # CAP 1.0's strings: one with no "=" names nothing
    return [p for p in pairs if p.get("value_name")] if version == "1.0" else pairs


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _words(text: str) -> list[str]:
    # CAP's lists (addresses, incidents) are space-separated, double-quoted when one has spaces.
    return [quoted or bare for quoted, bare in re.findall(r'"([^"]*)"|(\S+)', text)]


def _reference(triple: str) -> dict | str:
    parts = triple.split(",")
    if len(parts) != 3:
        return triple  # fails validation, naming the reference
    return dict(zip(("sender", "identifier", "sent"), parts))


def _identity(root: ET.Element, ns: str) -> str | None:
    """The Alert id of a refused message whose identity is itself valid, for its failure
    record."""
    found = {name: _text(element) for name in ("sender", "identifier", "sent")
             if (element := root.find(f"{{{ns}}}{name}")) is not None}
    try:
        ref = CapRef.model_validate(found)
    except ValidationError:
        return None
    return cap_alert_id(ref.sender, ref.identifier, ref.sent)


_CAP_NAMES = {"value_name": "valueName"}


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = "alert"
        for step in error["loc"]:
            where += f"[{step + 1}]" if isinstance(step, int) else f"/{_CAP_NAMES.get(step, step)}"
        if error["type"] == "missing" or (error["type"] == "too_short" and not error["input"]):
            parts.append(f"{where}: required element missing or empty")
        elif error["type"] == "value_error":  # our own message, which quotes the value
            parts.append(f"{where}: {error['ctx']['error']}")
        elif isinstance(error["input"], str):
            parts.append(f"{where}: {error['msg']} (got {_clip(error['input'])})")
        else:
            parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _clip(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def _cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its longest head that ends at a word
    boundary (a single longer word is cut where the limit falls)."""
    if len(text) <= limit:
        return text
    head = re.match(r"(?s)(.*\S)\s", text[:limit + 1])
    return head.group(1) if head else text[:limit]


# --- answering -----------------------------------------------------------------------------------

# The XSDs' sequences inside <info>, by version: which children a copied element keeps. Text
# elements keep their text only; anything the version does not define there is left out (its XSD
# allows none). CAP 1.1's are 1.2's; CAP 1.0 has no <responseType> or <derefUri>, and its
# <eventCode>, <parameter> and <geocode> are text.
_STRUCTURE = {
    "info": ("language", "category", "event", "responseType", "urgency", "severity", "certainty",
             "audience", "eventCode", "effective", "onset", "expires", "senderName", "headline",
             "description", "instruction", "web", "contact", "parameter", "resource", "area"),
    "eventCode": ("valueName", "value"),
    "parameter": ("valueName", "value"),
    "resource": ("resourceDesc", "mimeType", "size", "uri", "derefUri", "digest"),
    "area": ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling"),
    "geocode": ("valueName", "value"),
}
_STRUCTURES = {
    "1.2": _STRUCTURE,
    "1.1": _STRUCTURE,
    "1.0": {"info": tuple(n for n in _STRUCTURE["info"] if n != "responseType"),
            "resource": tuple(n for n in _STRUCTURE["resource"] if n != "derefUri"),
            "area": _STRUCTURE["area"]},
}


def _q(name: str, ns: str = CAP_NS) -> str:
    return f"{{{ns}}}{name}"


def _copy(element: ET.Element, ns: str, version: str) -> ET.Element:
    """`element` as published: its text, and the CAP children its sequence has, in order."""
    copy = ET.Element(element.tag)
    kept = {_q(name, ns) for name in _STRUCTURES[version].get(element.tag[len(ns) + 2:], ())}
    if kept:
        copy.extend(_copy(child, ns, version) for child in element if child.tag in kept)
    else:
        copy.text = element.text
    return copy


def _resource_element(resource: CapResource, ns: str) -> ET.Element:
    element = ET.Element(_q("resource", ns))
    for name, value in (("resourceDesc", resource.resource_desc),
                        ("mimeType", resource.mime_type), ("size", resource.size),
                        ("uri", resource.uri), ("digest", resource.digest)):
        if value is not None:
            ET.SubElement(element, _q(name, ns)).text = str(value)
    return element


def _cap_time(moment: datetime) -> str:
    """An aware datetime as a CAP dateTime: whole seconds, an explicit offset, UTC as "-00:00"."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("sent must be timezone-aware: a CAP time carries its offset")
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if offset == timedelta(0) else text
