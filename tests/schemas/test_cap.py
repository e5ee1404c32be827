"""CAP 1.2 on the `alerts` topic: published alerts read field by field, hostile XML refused with
its reason and nothing expanded, and the Update that answers an alert checked against the OASIS
CAP 1.2 schema.

The fixtures in cap/ are modelled on published alerts (an NWS tornado warning with its Update and
Cancel, an IPAWS county evacuation order in English, Spanish and Korean with an acknowledgement,
an NTWC tsunami exercise); identifiers and details are made up.
"""

import hashlib
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import xmlschema

from alertanim.schemas import (Alert, CapAlert, CapResource, InvalidAlert, cap_alert_id, cap_update,
                     choose_info, is_cap, parse_alert, parse_cap, to_alert)
from alertanim.schemas.errors import REASONS

HERE = Path(__file__).parent / "cap"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
WARNING = "nws_tornado_warning.xml"
UPDATE = "nws_tornado_warning_update.xml"
CANCEL = "nws_tornado_warning_cancel.xml"
MULTILINGUAL = "ipaws_evacuation_multilingual.xml"
ACK = "ack.xml"
EXERCISE = "ntwc_tsunami_exercise.xml"
FIXTURES = [WARNING, UPDATE, CANCEL, MULTILINGUAL, ACK, EXERCISE]
EARTHQUAKE_11 = "usgs_earthquake_1_1.xml"  # CAP 1.1
STORM_10 = "nws_severe_thunderstorm_1_0.xml"  # CAP 1.0
OLDER = {EARTHQUAKE_11: "1.1", STORM_10: "1.0"}
ANIMATED = [WARNING, UPDATE, MULTILINGUAL, EXERCISE]  # the ones that announce something


def raw(name: str) -> bytes:
    return (HERE / name).read_bytes()


def cap(name: str) -> CapAlert:
    return parse_cap(raw(name))


@pytest.fixture(scope="module")
def xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(HERE / "CAP-v1.2.xsd")


# --- reading -------------------------------------------------------------------------------------

def test_a_tornado_warning_reads_as_published():
    alert = cap(WARNING)
    assert alert.identifier == ("urn:oid:2.49.0.1.840.0.4c1f8e3b7a2d9c6e5f0a1b2c3d4e5f6a7b8c9d0e"
                                ".001.1")
    assert alert.sender == "w-nws.webmaster@noaa.gov"
    assert alert.sent == "2024-05-06T20:42:00-05:00"
    assert alert.sent_at == datetime(2024, 5, 7, 1, 42, tzinfo=timezone.utc)
    assert (alert.status, alert.msg_type, alert.scope) == ("Actual", "Alert", "Public")
    assert alert.codes == ["IPAWSv1.0"] and alert.references == [] and alert.source is None
    [info] = alert.infos
    assert info.language == "en-US" and info.categories == ["Met"]
    assert info.event == "Tornado Warning" and info.response_types == ["Shelter"]
    assert (info.urgency, info.severity, info.certainty) == ("Immediate", "Extreme", "Observed")
    assert [(c.value_name, c.value) for c in info.event_codes] == [
        ("SAME", "TOR"), ("NationalWeatherService", "TOW")]
    assert (info.onset, info.expires) == ("2024-05-06T20:42:00-05:00", "2024-05-06T21:15:00-05:00")
    assert info.sender_name == "NWS Norman OK"
    assert info.headline.startswith("Tornado Warning issued May 6 at 8:42PM CDT")
    assert "SOURCE...Radar indicated rotation." in info.description
    assert info.instruction.startswith("TAKE COVER NOW!")
    assert info.web == "http://www.weather.gov" and info.resources == []
    params = {(p.value_name, p.value) for p in info.parameters}
    assert ("VTEC", "/O.NEW.KOUN.TO.W.0042.240507T0142Z-240507T0215Z/") in params
    assert ("BLOCKCHANNEL", "EAS") in params and ("BLOCKCHANNEL", "NWEM") in params
    [area] = info.areas
    assert area.area_desc == "Cleveland, OK; McClain, OK" and len(area.polygons) == 1
    assert [(g.value_name, g.value) for g in area.geocodes] == [
        ("SAME", "040027"), ("SAME", "040087"), ("UGC", "OKC027"), ("UGC", "OKC087")]


def test_a_multilingual_alert_keeps_every_info_in_its_language():
    alert = cap(MULTILINGUAL)  # written with a "cap:" prefix: the namespace is what counts
    assert [i.language for i in alert.infos] == ["en-US", "es-US", "ko-KR"]
    assert [i.event for i in alert.infos] == ["Evacuation Immediate", "Evacuación inmediata",
                                              "즉시 대피"]
    assert all(i.categories == ["Fire", "Safety"] for i in alert.infos)
    assert alert.infos[2].headline == "대피 명령: 캐니언 리지 산불"
    assert alert.incidents == ["LAC-2025-0112", "Canyon Ridge Fire"]
    assert alert.source == "Los Angeles County Office of Emergency Management"
    [audio] = alert.infos[0].resources  # IPAWS' broadcast audio; its inline content is not kept
    assert (audio.mime_type, audio.size) == ("audio/x-ipaws-audio-mp3", 96)


def test_an_update_and_a_cancel_reference_the_warning():
    warning, update, cancel = cap(WARNING), cap(UPDATE), cap(CANCEL)
    assert update.msg_type == "Update" and update.references == [warning.ref]
    assert cancel.msg_type == "Cancel" and cancel.references == [warning.ref, update.ref]
    assert cancel.references[0].sent_at == warning.sent_at
    assert cancel.infos[0].response_types == ["AllClear"]


def test_an_ack_has_no_info_and_names_its_addressees():
    ack = cap(ACK)
    assert (ack.msg_type, ack.scope, ack.infos) == ("Ack", "Private", [])
    assert ack.addresses == ["alertla@ceo.lacounty.gov", "LA County EOC Duty Officer"]
    assert ack.references == [cap(MULTILINGUAL).ref]
    assert ack.note.startswith("Received;")
    assert choose_info(ack, ["en"]) is None


def test_an_exercise_keeps_its_status_restriction_and_defaults():
    exercise = cap(EXERCISE)
    assert (exercise.status, exercise.scope) == ("Exercise", "Restricted")
    assert exercise.restriction.startswith("LANTEX25 exercise participants")
    assert exercise.sent_at.utcoffset() == timedelta(0)  # "-00:00", CAP's UTC
    [info] = exercise.infos
    assert info.language == "en-US"  # no <language>: CAP's default
    [area] = info.areas
    assert area.circles == ["42.9,-70.2 150"] and (area.altitude, area.ceiling) == (0.0, 30.5)


@pytest.mark.parametrize("name", FIXTURES)
def test_the_fixtures_are_valid_cap_1_2(xsd, name):
    xsd.validate(HERE / name)


def test_the_alert_id_is_the_cap_identity():
    first, again = cap(WARNING), cap(WARNING)
    assert first.alert_id == again.alert_id
    assert re.fullmatch(r"cap-[0-9a-f]{40}", first.alert_id)
    # Published again, laid out differently (no indentation, a prefix): the same message.
    relaid = re.sub(rb">\s+<", b"><", raw(WARNING)).replace(b"<alert xmlns=", b"<c:alert xmlns:c=")
    relaid = re.sub(rb"<(/?)(?!\?|c:)", rb"<\1c:", relaid)
    assert parse_cap(relaid).alert_id == first.alert_id
    assert cap(UPDATE).alert_id != first.alert_id
    assert cap_alert_id(first.sender, first.identifier + "x", first.sent) != first.alert_id
    assert cap_alert_id(first.sender, first.identifier, "2024-05-07T01:42:00-00:00") \
        != first.alert_id  # the same instant spelled otherwise is another message to CAP
    Alert(id=first.alert_id, text="x")


def test_xml_is_told_from_json_by_its_first_byte():
    assert is_cap(raw(WARNING))
    assert is_cap(b"\xef\xbb\xbf \r\n\t<alert/>")
    assert not is_cap(b'{"id": "a-1", "text": "fire"}')
    assert not is_cap(b'\xef\xbb\xbf  {"id": "a-1"}')
    assert not is_cap(b"") and not is_cap(b"   ")


@pytest.mark.parametrize("preference, language", [
    (["ko"], "ko-KR"),
    (["es-MX", "en"], "es-US"),  # primary subtags compared
    (["EN-gb"], "en-US"),
    (["fr", "zh", "es"], "es-US"),  # the first preference some info has
    (["fr"], "en-US"),  # none: the first info
    ([], "en-US"),
])
def test_the_info_is_chosen_by_language_preference(preference, language):
    assert choose_info(cap(MULTILINGUAL), preference).language == language


# --- to Alert ------------------------------------------------------------------------------------

def test_to_alert_carries_the_info_and_the_cap_identity():
    warning = cap(WARNING)
    info = choose_info(warning, ["en"])
    alert = to_alert(warning, info, max_chars=5_000)
    assert alert.id == warning.alert_id and alert.cap == warning.ref
    assert alert.text == "\n\n".join([info.headline, info.description, info.instruction])
    assert (alert.language, alert.event, alert.severity) == ("en-US", "Tornado Warning", "Extreme")
    assert (alert.urgency, alert.certainty) == ("Immediate", "Observed")
    assert (alert.status, alert.msg_type) == ("Actual", "Alert")
    assert alert.code_pairs() == (("SAME", "TOR"), ("NationalWeatherService", "TOW"))
    assert alert.area == "Cleveland, OK; McClain, OK" and alert.sent == warning.sent_at
    assert Alert.model_validate_json(alert.to_bytes()) == alert


@pytest.mark.parametrize("name", ANIMATED)
def test_every_animated_info_makes_a_valid_alert(name):
    message = cap(name)
    for info in message.infos:
        alert = to_alert(message, info, max_chars=5_000)
        assert Alert.model_validate_json(alert.to_bytes()) == alert
        assert (alert.status, alert.msg_type, alert.language) == (
            message.status, message.msg_type, info.language)


def test_the_text_is_cut_at_a_word_boundary():
    warning = cap(WARNING)
    info = warning.infos[0]
    full = "\n\n".join([info.headline, info.description, info.instruction])
    for limit in (30, 100, 301):
        alert = to_alert(warning, info, max_chars=limit)
        assert len(alert.text) <= limit and full.startswith(alert.text)
        assert full[len(alert.text)].isspace() and not alert.text[-1].isspace()
        assert Alert.model_validate_json(alert.to_bytes()) == alert


def test_an_info_with_no_text_is_its_event():
    warning = cap(WARNING)
    bare = warning.infos[0].model_copy(update={"headline": None, "description": None,
                                               "instruction": None})
    assert to_alert(warning, bare).text == "Tornado Warning"


def test_a_cancel_is_not_animated():
    message = cap(CANCEL)
    with pytest.raises(InvalidAlert) as caught:
        to_alert(message, message.infos[0])
    assert caught.value.reason == "cap_msg_type" and caught.value.alert_id == message.alert_id


def test_json_alerts_hash_as_before_the_cap_fields():
    alert = parse_alert(b'{"id": "a-1", "text": "A fire has broken out", "language": "en"}')
    before = {"id": "a-1", "text": "A fire has broken out", "language": "en", "sent": None,
              "area": None, "severity": None, "event": None, "event_codes": []}
    assert alert.content_hash() == hashlib.sha256(
        json.dumps(before, sort_keys=True).encode()).hexdigest()
    from_cap = to_alert(cap(WARNING), cap(WARNING).infos[0])
    assert from_cap.content_hash() != from_cap.model_copy(update={"status": "Test"}).content_hash()


# --- refused -------------------------------------------------------------------------------------

def xml(body: bytes, doctype: bytes = b"") -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + body


CAP_BODY = (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&e;</identifier>'
            b"</alert>")
LAUGHS = xml(CAP_BODY.replace(b"&e;", b"&lol9;"), b"<!DOCTYPE alert [\n<!ENTITY lol0 \"lol\">\n"
             + b"".join(b'<!ENTITY lol%d "%s">\n' % (n, b"&lol%d;" % (n - 1) * 10)
                        for n in range(1, 10)) + b"]>\n")
QUADRATIC = xml(CAP_BODY.replace(b"&e;", b"&a;" * 20_000),
                b'<!DOCTYPE alert [<!ENTITY a "' + b"a" * 40_000 + b'">]>')
XXE = xml(CAP_BODY, b'<!DOCTYPE alert [<!ENTITY e SYSTEM "file:///etc/passwd">]>')
XXE_PUBLIC = xml(CAP_BODY, b'<!DOCTYPE alert [<!ENTITY e PUBLIC "-//X//Y" "http://evil.test/e">]>')
EXTERNAL_DTD = xml(CAP_BODY.replace(b"&e;", b"x"),
                   b'<!DOCTYPE alert SYSTEM "http://evil.test/cap.dtd">')
PUBLIC_DTD = xml(CAP_BODY.replace(b"&e;", b"x"),
                 b'<!DOCTYPE alert PUBLIC "-//OASIS//DTD CAP//EN" "http://evil.test/cap.dtd">')
PARAMETER_EXTERNAL = xml(CAP_BODY.replace(b"&e;", b"x"),
                         b'<!DOCTYPE alert [<!ENTITY % p SYSTEM "http://evil.test/p.dtd"> %p;]>')
PARAMETER_INTERNAL = xml(CAP_BODY, b"<!DOCTYPE alert [<!ENTITY % p \"<!ENTITY e 'x'>\"> %p;]>")
INTERNAL_DTD = xml(CAP_BODY.replace(b"&e;", b"x"), b"<!DOCTYPE alert [<!ELEMENT alert ANY>]>")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("message, reason", [
    (LAUGHS, "xml_entities"),
    (QUADRATIC, "xml_entities"),
    (PARAMETER_INTERNAL, "xml_entities"),
    (XXE, "xml_external_entity"),
    (XXE_PUBLIC, "xml_external_entity"),
    (PARAMETER_EXTERNAL, "xml_external_entity"),
    (EXTERNAL_DTD, "xml_dtd"),
    (PUBLIC_DTD, "xml_dtd"),
    (INTERNAL_DTD, "xml_dtd"),
    (xml(b"<alert>&e;</alert>"), "not_xml"),  # an entity nobody declared
    (b"not xml at all", "not_xml"),
    (xml(b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'), "not_xml"),
    (xml(b"<alert>caf\xe9</alert>"), "not_xml"),  # Latin-1 in a document that says UTF-8
    (b'<?xml version="1.0" encoding="UTF-16"?><alert/>', "not_xml"),  # says UTF-16, is not
], ids=["billion-laughs", "quadratic-blowup", "parameter-entity", "xxe-file", "xxe-public",
        "parameter-entity-external", "external-dtd", "public-dtd", "internal-dtd",
        "undeclared-entity", "text", "unclosed", "not-utf8", "wrong-encoding"])
def test_hostile_xml_is_refused_and_nothing_is_expanded(message, reason):
    started = time.perf_counter()
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(message)
    assert caught.value.reason == reason and reason in REASONS
    assert not caught.value.transient
    assert time.perf_counter() - started < 1.0
    detail = str(caught.value)
    assert "lollol" not in detail and "aaaa" not in detail and "root:" not in detail
    assert len(detail) < 400


@pytest.mark.parametrize("message, reason", [
    # an entity declared after other declarations is still the entity it is
    (xml(CAP_BODY, b'<!DOCTYPE alert [<!ELEMENT alert ANY><!ENTITY e "x">]>'), "xml_entities"),
    (xml(CAP_BODY, b'<!DOCTYPE alert [<!ENTITY u SYSTEM "http://evil.test/u" NDATA n>]>'),
     "xml_external_entity"),
    # an external DTD is refused before its internal subset is read
    (xml(CAP_BODY, b'<!DOCTYPE alert SYSTEM "http://evil.test/cap.dtd" [<!ENTITY e "x">]>'),
     "xml_dtd"),
    # a DTD that declares no entity is the reason, however the rest reads
    (xml(b"<alert", b"<!DOCTYPE alert [<!ELEMENT alert ANY>]>"), "xml_dtd"),
    (xml(b"<alert/>", b"<!DOCTYPE alert [<!BOGUS>]>"), "xml_dtd"),
    (xml(b"<alert/>", b"<!DOCTYPE alert>"), "xml_dtd"),
], ids=["entity-after-element", "unparsed-entity", "external-dtd-with-subset",
        "dtd-then-unclosed", "dtd-malformed", "dtd-empty"])
def test_a_dtd_is_refused_as_a_dtd_unless_it_declares_an_entity(message, reason):
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(message)
    assert caught.value.reason == reason


@pytest.mark.parametrize("message, reason, detail", [
    (raw(WARNING).replace(CAP_NS.encode(), b"urn:oasis:names:tc:emergency:cap:1.3"),
     "unsupported_cap_version", "cap:1.3"),
    # not CAP 1.0's namespace, which is http://www.incident.com/cap/1.0
    (raw(WARNING).replace(CAP_NS.encode(), b"urn:oasis:names:tc:emergency:cap:1.0"),
     "unsupported_cap_version", "cap:1.0"),
    (xml(b'<feed xmlns="http://www.w3.org/2005/Atom"><title>NWS alerts</title></feed>'),
     "not_cap", "Atom"),
    (raw(WARNING).replace(b" xmlns='" + CAP_NS.encode() + b"'", b""), "not_cap", "'alert'"),
    (xml(b'<info xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>'), "not_cap", "info"),
])
def test_other_documents_are_not_cap_1_2(message, reason, detail):
    with pytest.raises(InvalidAlert, match=re.escape(detail)) as caught:
        parse_cap(message)
    assert caught.value.reason == reason and reason in REASONS


@pytest.mark.parametrize("encoding", [b"x-unheard-of", b"UTF-7", b"shift_jis", b"rot13",
                                      b"base64", b"idna", b"undefined"])
def test_a_declared_encoding_that_cannot_be_read_is_not_xml(encoding):
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(b'<?xml version="1.0" encoding="%s"?><alert/>' % encoding)
    assert caught.value.reason == "not_xml"


def test_messages_over_the_limit_are_refused_before_parsing():
    with pytest.raises(InvalidAlert, match="the limit is 1000") as caught:
        parse_cap(raw(WARNING), max_bytes=1_000)
    assert caught.value.reason == "too_large"
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(b"<" * 2_000_000)  # never read: not even "not_xml"
    assert caught.value.reason == "too_large"


def test_run_and_the_stream_read_cap_with_the_one_byte_limit(monkeypatch, tmp_path, capsys):
    """`run --cap` refuses what the worker's ingest refuses: both take the settings' limit."""
    from alertanim.agents.cli import main
    from alertanim.agents.settings import Settings

    document = tmp_path / "warning.xml"
    document.write_bytes(raw(WARNING))
    size = len(raw(WARNING))
    monkeypatch.setenv("ALERTANIM_MAX_CAP_BYTES", str(size - 1))
    assert Settings().max_cap_bytes == size - 1
    assert main(["run", "--cap", str(document), "--out", str(tmp_path / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert "too_large" in err and f"the limit is {size - 1}" in err, err


def without(name: str, element: str) -> bytes:
    return re.sub(rb"\s*<%s>[^<]*</%s>" % (element.encode(), element.encode()), b"", raw(name),
                  count=1)


def replaced(name: str, old: str, new: str) -> bytes:
    message = raw(name)
    assert old.encode() in message
    return message.replace(old.encode(), new.encode(), 1)


@pytest.mark.parametrize("message, where", [
    *[(without(WARNING, e), f"alert/{e}:")
      for e in ("identifier", "sender", "sent", "status", "msgType", "scope")],
    *[(without(WARNING, e), f"alert/info[1]/{e}:")
      for e in ("category", "event", "urgency", "severity", "certainty")],
    (without(MULTILINGUAL, "cap:mimeType"), "alert/info[1]/resource[1]/mimeType"),
    (replaced(WARNING, "<areaDesc>Cleveland, OK; McClain, OK</areaDesc>", ""),
     "alert/info[1]/area[1]/areaDesc"),
    (replaced(WARNING, "<event>Tornado Warning</event>", "<event> </event>"),
     "alert/info[1]/event"),
])
def test_missing_required_elements_are_named(message, where):
    with pytest.raises(InvalidAlert, match=re.escape(where)) as caught:
        parse_cap(message)
    assert caught.value.reason == "invalid_cap"
    assert "required element missing or empty" in str(caught.value)


@pytest.mark.parametrize("old, new, where", [
    ("<status>Actual", "<status>Real", "alert/status"),
    ("<msgType>Alert", "<msgType>Warning", "alert/msgType"),
    ("<scope>Public", "<scope>Everyone", "alert/scope"),
    ("<category>Met", "<category>Weather", "alert/info[1]/category[1]"),
    ("<responseType>Shelter", "<responseType>Run", "alert/info[1]/responseType[1]"),
    ("<urgency>Immediate", "<urgency>Now", "alert/info[1]/urgency"),
    ("<severity>Extreme", "<severity>Catastrophic", "alert/info[1]/severity"),
    ("<certainty>Observed", "<certainty>Very Likely", "alert/info[1]/certainty"),  # CAP 1.0's
    ("<language>en-US", "<language>en_US", "alert/info[1]/language"),
    ("-05:00</sent>", "</sent>", "alert/sent"),  # no offset at all
    ("2024-05-06T20:42:00-05:00</sent>", "2024-13-06T20:42:00-05:00</sent>", "alert/sent"),
    ("21:15:00-05:00</expires>", "21:15-05:00</expires>", "alert/info[1]/expires"),
    ("<sender>w-nws.webmaster@noaa.gov", "<sender>NWS Norman", "alert/sender"),
    ("<code>", "<references>w-nws.webmaster@noaa.gov,x</references><code>",
     "alert/references[1]"),
    ("<event>Tornado Warning</event>", "<event>Tornado Warning</event><event>Tornado</event>",
     "alert/info[1]/event: appears 2 times"),
    ("<msgType>Alert</msgType>", "<msgType>Alert</msgType><msgType>Alert</msgType>",
     "alert/msgType: appears 2 times"),
    ("<altitude>0</altitude>", "<altitude>sea level</altitude>", "alert/info[1]/area[1]/altitude"),
])
def test_values_outside_cap_are_named(old, new, where):
    source = EXERCISE if "altitude" in old else WARNING
    with pytest.raises(InvalidAlert, match=re.escape(where)) as caught:
        parse_cap(replaced(source, old, new))
    assert caught.value.reason == "invalid_cap"


def test_a_refused_message_with_a_valid_identity_names_its_alert():
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(replaced(WARNING, "<urgency>Immediate", "<urgency>Now"))
    assert caught.value.alert_id == cap(WARNING).alert_id
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(without(WARNING, "sender"))
    assert caught.value.alert_id is None


def test_lists_and_strings_are_bounded():
    geocode = "<geocode><valueName>UGC</valueName><value>OKC027</value></geocode>"
    many = replaced(WARNING, "</area>", geocode * 2_100 + "</area>")
    with pytest.raises(InvalidAlert, match=re.escape("alert/info[1]/area[1]/geocode")):
        parse_cap(many)  # refused while read (below), named as the model names it
    long = replaced(WARNING, "<event>Tornado Warning", "<event>" + "Tornado " * 40)
    with pytest.raises(InvalidAlert, match=re.escape("alert/info[1]/event")):
        parse_cap(long)


CAP_HEAD = b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier>'


@pytest.mark.parametrize("flood, where", [
    (b"<info/>" * 65, "alert/info: at most 64 in one <alert>"),
    (b"<info><area>" + b"<geocode/>" * 2_049 + b"</area></info>",
     "alert/info[1]/area[1]/geocode: at most 2048"),
    (b"<x>" * 30, "elements nested more than 24 deep"),
    (b"<x/>" * 20_001, "more than 20000 elements"),
])
def test_element_floods_are_refused_while_the_document_is_read(flood, where):
    """Refused at the first element past a bound: what follows it, here bytes that are not XML
    at all, is never read (a document read whole would be refused as not_xml)."""
    with pytest.raises(InvalidAlert, match=re.escape(where)) as caught:
        parse_cap(CAP_HEAD + flood + b"<<not xml")
    assert caught.value.reason == "invalid_cap"


def test_a_document_within_the_bounds_is_read():
    geocode = b"<geocode><valueName>UGC</valueName><value>OKC027</value></geocode>"
    many = raw(WARNING).replace(b"</area>", geocode * 2_000 + b"</area>", 1)
    assert len(parse_cap(many).infos[0].areas[0].geocodes) == 2_000 + len(
        cap(WARNING).infos[0].areas[0].geocodes)


@pytest.mark.parametrize("alert_id", ["cap-0000deadbeef", "CAP-0000deadbeef", "Cap-x"])
def test_a_json_alert_may_not_use_the_cap_prefix(alert_id):
    with pytest.raises(InvalidAlert) as caught:
        parse_alert(b'{"id": "%s", "text": "Sunny skies all day"}' % alert_id.encode())
    assert caught.value.reason == "reserved_id" and caught.value.alert_id == alert_id
    assert parse_alert(b'{"id": "capital-1", "text": "Sunny skies all day"}').id == "capital-1"


def test_elements_cap_does_not_define_are_ignored():
    extended = replaced(WARNING, "<web>", '<x:rank xmlns:x="urn:example">1</x:rank><madeUp>2'
                                          '</madeUp><web>')
    assert parse_cap(extended) == cap(WARNING)


def test_an_empty_event_code_is_dropped():
    empty = replaced(WARNING, "<value>TOW</value>", "<value></value>")
    assert [c.value for c in parse_cap(empty).infos[0].event_codes] == ["TOR"]


# --- answering with an Update --------------------------------------------------------------------

GIF, WEBP = b"GIF89a" + bytes(range(256)) * 4, b"RIFF\x00\x00\x00\x00WEBPVP8L" + bytes(300)
SENT = datetime(2025, 1, 12, 22, 6, 3, 500_000, tzinfo=timezone.utc)


def renditions() -> list[CapResource]:
    return [CapResource.of(GIF, "image/gif", "https://media.example.org/a/anim.gif",
                           "Animation of the alert (GIF)"),
            CapResource.of(WEBP, "image/webp", "https://media.example.org/a/anim.webp",
                           "Animation of the alert (WebP)")]


def answer(name: str, **changes) -> bytes:
    return cap_update(raw(name), renditions(), **{
        "sender": "alerts@alertanim.example.org", "identifier": "alertanim-0001", "sent": SENT,
        **changes})


def test_a_resource_describes_a_rendition_as_cap_does():
    [gif, _] = renditions()
    assert (gif.mime_type, gif.size) == ("image/gif", len(GIF))
    assert gif.digest == hashlib.sha1(GIF).hexdigest()


@pytest.mark.parametrize("name", ANIMATED)
def test_the_update_references_the_original_and_carries_the_renditions(xsd, name):
    original, out = cap(name), answer(name)
    xsd.validate(out.decode())
    assert out.startswith(b"<?xml") and f'xmlns="{CAP_NS}"'.encode() in out[:200]
    update = parse_cap(out)
    assert (update.msg_type, update.identifier, update.sender) == (
        "Update", "alertanim-0001", "alerts@alertanim.example.org")
    assert update.sent == "2025-01-12T22:06:03-00:00"  # whole seconds; UTC as CAP writes it
    assert update.references == [original.ref]
    assert (update.status, update.scope, update.restriction, update.addresses,
            update.incidents) == (original.status, original.scope, original.restriction,
                                  original.addresses, original.incidents)
    assert len(update.infos) == len(original.infos)
    for before, after in zip(original.infos, update.infos):
        assert after.resources[:len(before.resources)] == before.resources
        ours = after.resources[len(before.resources):]
        assert [(r.mime_type, r.size, r.uri, r.digest) for r in ours] == [
            ("image/gif", len(GIF), "https://media.example.org/a/anim.gif",
             hashlib.sha1(GIF).hexdigest()),
            ("image/webp", len(WEBP), "https://media.example.org/a/anim.webp",
             hashlib.sha1(WEBP).hexdigest())]
        assert after.model_copy(update={"resources": before.resources}) == before


def info_children(message: bytes) -> list[list[str]]:
    import xml.etree.ElementTree as ET  # reading our own output

    root = ET.fromstring(message)
    return [[child.tag.split("}")[1] for child in info]
            for info in root.findall(f"{{{CAP_NS}}}info")]


def test_the_renditions_follow_the_infos_resources_and_precede_its_areas():
    for children in info_children(answer(MULTILINGUAL)):
        resources = [i for i, name in enumerate(children) if name == "resource"]
        first_area = children.index("area")
        assert resources[-1] == first_area - 1 and len(resources) in (2, 3)
        assert children[resources[0] - 1] in ("parameter", "web")
    # the original's broadcast audio first, its inline content kept as published
    out = answer(MULTILINGUAL)
    assert b"<derefUri>SUQzAwAAAAAAAF//" in out
    assert out.index(b"audio/x-ipaws-audio-mp3") < out.index(b"image/gif")
    assert [c[-2:] for c in info_children(answer(WARNING))] == [["resource", "area"]]


def test_the_update_is_xsd_valid_when_the_original_carries_extensions(xsd):
    extended = replaced(WARNING, "<web>", '<x:rank xmlns:x="urn:example"><x:a>1</x:a></x:rank>'
                                          '<web>')
    out = cap_update(extended, renditions(), sender="a@example.org", identifier="u-1",
                     sent="2024-05-06T20:43:10-05:00", note="Animation of the warning attached")
    xsd.validate(out.decode())
    assert b"urn:example" not in out
    assert parse_cap(out).note == "Animation of the warning attached"


def test_the_text_of_the_infos_is_copied_as_published():
    out = answer(WARNING).decode()
    original = raw(WARNING).decode()
    description = re.search(r"<description>(.*?)</description>", original, re.S).group(1)
    assert f"<description>{description}</description>" in out
    assert "<note>" not in out


@pytest.mark.parametrize("changes", [
    {"sent": datetime(2025, 1, 12, 22, 6, 3)},  # naive: no offset to write
    {"sent": "2025-01-12T22:06:03Z"},
    {"identifier": "alertanim 0001"},
    {"sender": "a,b@example.org"},
])
def test_an_update_cap_would_refuse_is_not_built(changes):
    with pytest.raises(ValueError):
        answer(WARNING, **changes)


def test_the_update_of_an_exercise_stays_an_exercise():
    update = parse_cap(answer(EXERCISE))
    assert (update.status, update.scope) == ("Exercise", "Restricted")
    alert = to_alert(update, update.infos[0])
    assert (alert.status, alert.msg_type) == ("Exercise", "Update")


@pytest.mark.parametrize("sent", ["2024-05-07T01:42:00Z", "2024-05-06T20:42:00.250-05:00",
                                  "2024-05-07T01:42:00.123456789Z"])
def test_real_feeds_clock_spellings_are_read_and_our_update_keeps_to_cap(sent):
    """CAP's XSD forbids "Z" and fractions, but feeds publish them: the alert is read (with its
    identity as published), and the Update we write still uses CAP's own form."""
    source = raw(WARNING).replace(b"<sent>2024-05-06T20:42:00-05:00</sent>",
                                  f"<sent>{sent}</sent>".encode())
    assert source != raw(WARNING)
    cap = parse_cap(source)
    assert cap.sent == sent and cap.sent_at.utcoffset() is not None
    out = cap_update(source, renditions(), sender="alerts@alertanim.example.org",
                     identifier="alertanim-0001", sent=SENT)
    assert parse_cap(out).references[0].sent == sent
    assert re.search(rb"<sent>[0-9T:-]+[-+][0-9]{2}:[0-9]{2}</sent>", out)


# --- CAP 1.1 and 1.0 -----------------------------------------------------------------------------

CAP_11_NS = "urn:oasis:names:tc:emergency:cap:1.1"
CAP_10_NS = "http://www.incident.com/cap/1.0"


@pytest.fixture(scope="module")
def xsds() -> dict[str, xmlschema.XMLSchema]:
    return {version: xmlschema.XMLSchema(HERE / f"CAP-v{version}.xsd")
            for version in ("1.0", "1.1", "1.2")}


def test_the_older_schemas_are_vendored_with_their_notices():
    for version in ("1.0", "1.1"):
        head = raw(f"CAP-v{version}.xsd")[:1_000].decode()
        assert f"Common Alerting Protocol Version {version}" in head and "OASIS" in head
        assert "google/cap-library" in head


@pytest.mark.parametrize("name, version", OLDER.items())
def test_the_older_fixtures_are_valid_in_their_own_version(xsds, name, version):
    xsds[version].validate(raw(name).decode())
    assert not xsds["1.2"].is_valid(raw(name).decode())  # another namespace, another schema
    assert cap(name).version == version


def test_the_1_2_fixtures_read_as_1_2():
    assert {cap(name).version for name in FIXTURES} == {"1.2"}


def test_a_usgs_earthquake_in_cap_1_1_reads_onto_the_one_model():
    quake = cap(EARTHQUAKE_11)
    assert (quake.sender, quake.identifier, quake.sent) == (
        "ens@usgs.gov", "us2025abcd.1736719800", "2025-01-12T22:10:00-00:00")
    assert quake.alert_id == cap_alert_id(quake.sender, quake.identifier, quake.sent)
    assert (quake.status, quake.msg_type, quake.scope, quake.incidents) == (
        "Actual", "Alert", "Public", ["us2025abcd"])
    [info] = quake.infos
    assert info.categories == ["Geo"] and info.response_types == ["Monitor"]
    assert [(c.value_name, c.value) for c in info.event_codes] == [("SAME", "EQW")]
    assert ("Magnitude", "6.4 Mww") in [(p.value_name, p.value) for p in info.parameters]
    [shakemap] = info.resources
    assert shakemap.mime_type is None  # optional before CAP 1.2
    assert info.areas[0].circles == ["40.4760,-124.2190 100"]
    alert = to_alert(quake, info)
    assert (alert.event, alert.severity, alert.urgency, alert.certainty, alert.scope) == (
        "Earthquake", "Severe", "Past", "Observed", "Public")
    assert alert.cap == quake.ref and alert.text.startswith("M 6.4")


def test_a_cap_1_0_document_reads_onto_the_one_model():
    storm = cap(STORM_10)
    assert storm.version == "1.0" and storm.scope is None  # optional in CAP 1.0
    assert "password" not in storm.model_dump() and "sekret" not in repr(storm)
    [info] = storm.infos
    assert info.language == "en-US" and info.certainty == "Likely"  # CAP 1.0's "Very Likely"
    assert info.response_types == []
    # "valueName=value" strings as pairs; one without "=" names nothing
    assert [(c.value_name, c.value) for c in info.event_codes] == [("SAME", "SVR")]
    assert [(p.value_name, p.value) for p in info.parameters] == [
        ("VTEC", "/O.NEW.KTOP.SV.W.0203.040920T2330Z-040921T0015Z/")]
    assert [(g.value_name, g.value) for g in info.areas[0].geocodes] == [("FIPS6", "020177")]
    alert = to_alert(storm, info)
    assert alert.scope is None and alert.certainty == "Likely" and alert.event_codes
    assert Alert.model_validate_json(alert.to_bytes()) == alert


def test_cap_1_0_without_categories_is_read():
    storm = parse_cap(raw(STORM_10).replace(b"<category>Met</category>", b""))
    assert storm.infos[0].categories == []


@pytest.mark.parametrize("name, old, new, where", [
    (STORM_10, "<status>Actual", "<status>Draft", "alert/status"),
    (STORM_10, "<category>Met", "<category>CBRNE", "alert/info[1]/category[1]"),
    (STORM_10, "<certainty>Very Likely", "<certainty>Observed", "alert/info[1]/certainty"),
    (EARTHQUAKE_11, "<responseType>Monitor", "<responseType>AllClear",
     "alert/info[1]/responseType[1]"),
    (EARTHQUAKE_11, "<responseType>Monitor", "<responseType>Avoid",
     "alert/info[1]/responseType[1]"),
    (EARTHQUAKE_11, "<certainty>Observed", "<certainty>Very Likely", "alert/info[1]/certainty"),
    (EARTHQUAKE_11, "<scope>Public</scope>", "", "alert/scope"),  # required from CAP 1.1 on
    (EARTHQUAKE_11, "<category>Geo</category>", "", "alert/info[1]/category"),
    (EARTHQUAKE_11, "<sender>ens@usgs.gov", "<sender>USGS ENS", "alert/sender"),
    (STORM_10, "<event>Severe Thunderstorm</event>", "<event>a</event><event>b</event>",
     "alert/info[1]/event: appears 2 times"),
])
def test_each_version_is_held_to_its_own_schema(xsds, name, old, new, where):
    message = replaced(name, old, new)
    with pytest.raises(InvalidAlert, match=re.escape(where)) as caught:
        parse_cap(message)
    assert caught.value.reason == "invalid_cap"
    assert caught.value.alert_id == (None if "sender" in old else cap(name).alert_id)
    if "appears" not in where and "sender" not in old:  # the XSD refuses it too
        assert not xsds[OLDER[name]].is_valid(message.decode())


@pytest.mark.parametrize("namespace", [CAP_11_NS, CAP_10_NS])
@pytest.mark.parametrize("doctype, reason", [
    (b'<!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;&x;&x;">]>', "xml_entities"),
    (b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "xml_external_entity"),
    (b'<!DOCTYPE alert SYSTEM "http://example.org/cap.dtd">', "xml_dtd"),
])
def test_older_versions_get_the_same_hostile_input_defences(namespace, doctype, reason):
    body = f'<alert xmlns="{namespace}"><identifier>&y;</identifier></alert>'.encode()
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(xml(body, doctype))
    assert caught.value.reason == reason


def test_older_versions_are_bounded_and_size_limited():
    with pytest.raises(InvalidAlert) as caught:
        parse_cap(raw(EARTHQUAKE_11), max_bytes=1_000)
    assert caught.value.reason == "too_large"
    many = raw(STORM_10).replace(b"<parameter>", b"<parameter>a=b</parameter>" * 300
                                 + b"<parameter>")
    with pytest.raises(InvalidAlert, match=re.escape("alert/info[1]/parameter")):
        parse_cap(many)


@pytest.mark.parametrize("name, version", OLDER.items())
def test_the_update_is_in_the_originals_version_and_valid_against_its_schema(xsds, name,
                                                                               version):
    original, out = cap(name), answer(name)
    xsds[version].validate(out.decode())
    namespace = {"1.1": CAP_11_NS, "1.0": CAP_10_NS}[version]
    assert f'xmlns="{namespace}"'.encode() in out[:200] and CAP_NS.encode() not in out
    update = parse_cap(out)
    assert (update.version, update.msg_type, update.status, update.scope) == (
        version, "Update", original.status, original.scope)
    assert update.references == [original.ref]
    for before, after in zip(original.infos, update.infos, strict=True):
        ours = after.resources[len(before.resources):]
        assert [(r.mime_type, r.size, r.uri, r.digest) for r in ours] == [
            ("image/gif", len(GIF), "https://media.example.org/a/anim.gif",
             hashlib.sha1(GIF).hexdigest()),
            ("image/webp", len(WEBP), "https://media.example.org/a/anim.webp",
             hashlib.sha1(WEBP).hexdigest())]
        assert after.model_copy(update={"resources": before.resources}) == before


def test_a_cap_1_0_update_repeats_its_strings_and_not_its_password(xsds):
    out = answer(STORM_10).decode()
    assert "<password>" not in out and "sekret" not in out
    assert "<eventCode>SAME=SVR</eventCode>" in out and "<certainty>Very Likely</certainty>" in out
    assert "<scope>" not in out  # the original had none
    scoped = replaced(STORM_10, "</source>", "</source><scope>Restricted</scope>")
    xsds["1.0"].validate(scoped.decode())
    update = cap_update(scoped, renditions(), sender="a@example.org", identifier="u-1", sent=SENT)
    xsds["1.0"].validate(update.decode())
    assert parse_cap(update).scope == "Restricted"


def test_a_cap_1_1_update_keeps_the_infos_children_in_the_1_1_order(xsds):
    out = answer(EARTHQUAKE_11)
    import xml.etree.ElementTree as ET  # reading our own output

    [info] = ET.fromstring(out).findall(f"{{{CAP_11_NS}}}info")
    names = [child.tag.split("}")[1] for child in info]
    assert names[-4:] == ["resource", "resource", "resource", "area"]
    xsds["1.1"].validate(out.decode())


def test_an_update_too_long_for_the_limit_is_made_smaller_in_order(xsd):
    """UPDATE_PLANS: the renditions in every <info>; in the animated one only; that one alone;
    that one without its areas. Each limit below lets exactly one plan fit."""
    from alertanim.schemas.cap import UPDATE_PLANS

    original = cap(MULTILINGUAL)
    languages = ["es"]  # the Spanish block is the one animated
    chosen = choose_info(original, languages)
    sizes = []
    for plan in range(len(UPDATE_PLANS)):
        limit = sizes[-1] - 1 if sizes else None
        out = answer(MULTILINGUAL, max_bytes=limit, languages=languages)
        assert limit is None or len(out) <= limit
        xsd.validate(out.decode())
        update = parse_cap(out)
        ours = [i for i in update.infos
                if any(r.uri == "https://media.example.org/a/anim.gif" for r in i.resources)]
        if plan == 0:
            assert len(ours) == len(update.infos) == len(original.infos)
        else:
            assert [i.language for i in ours] == [chosen.language]
            assert len(update.infos) == (len(original.infos) if plan == 1 else 1)
            assert bool(ours[0].areas) == (plan < 3)
        sizes.append(len(out))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    with pytest.raises(ValueError, match="the limit is"):
        answer(MULTILINGUAL, max_bytes=sizes[-1] - 1, languages=languages)
