"""A CAP alert in Korean or Spanish, through the worker without a broker: the AnimationReady's
alt text and the CAP Update's note and resourceDesc are in the language of the <info> block that
was animated, not in English."""

import xml.etree.ElementTree as ET

import pytest

from alertanim.pipeline.phrases import PHRASES
from alertanim.schemas import AnimationReady, parse_cap

from tests.support.cap import XSD, read
from tests.support.processor import drive, make, records

NS = "urn:oasis:names:tc:emergency:cap:1.2"


def only_in(language: str) -> bytes:
    """The multilingual evacuation order with only its <info> in `language` (so that block, not
    the English one, is animated), under an identifier of its own."""
    ET.register_namespace("cap", NS)
    root = ET.fromstring(read("ipaws_evacuation_multilingual.xml"))
    for info in root.findall(f"{{{NS}}}info"):
        if info.findtext(f"{{{NS}}}language").split("-")[0] != language:
            root.remove(info)
    root.find(f"{{{NS}}}identifier").text += f"-{language}"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@pytest.mark.parametrize("language, gif, alt", [
    ("ko", "산불을 나타낸 애니메이션 GIF",
     "산불을 나타낸 애니메이션입니다. 경보 내용: 대피 명령: 캐니언 리지 산불 빠르게 번지는 산불이"),
    ("es", "GIF animado que muestra un incendio forestal",
     "Animación que muestra un incendio forestal. Texto de la alerta: Orden de evacuación: "
     "incendio Canyon Ridge Un incendio forestal de rápido avance"),
])
def test_a_cap_alert_is_described_in_the_language_of_its_info(tmp_path, language, gif, alt):
    proc, sent = make(tmp_path)
    original = only_in(language)
    out = drive(proc, sent, original)
    [(_, value)] = records(out, "ready")
    ready = AnimationReady.from_bytes(value)
    assert (ready.language, ready.hazard) == (language, "wildfire")
    assert ready.alt_text.startswith(alt)
    [(_, update)] = records(out, "cap")
    answer = parse_cap(update)
    assert answer.note == ready.alt_text
    [info] = answer.infos
    added = info.resources[-len(ready.renditions):]
    assert [r.mime_type for r in added] == [r.media_type for r in ready.renditions]
    phrases = PHRASES[language]
    assert [r.resource_desc for r in added] == [
        phrases.resource(r.media_type, "wildfire") for r in ready.renditions]
    assert [r.resource_desc for r in added if r.mime_type == "image/gif"] == [gif]
    assert not [r.resource_desc for r in added if "alert (" in r.resource_desc]  # no English
    import xmlschema
    xmlschema.XMLSchema(str(XSD)).validate(update.decode())
    assert not records(out, "failed")
