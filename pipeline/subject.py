"""Stage 3a: the alert's primary subject and the English prompt built around it.

Alerts arrive in the publisher's language (Korea's run 90-157 characters of Korean), while the
text-to-image and CLIP models read English. A hazard lexicon maps the alert to one hazard; the
prompt is the English text itself, or the hazard's English scene when the alert is not English.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Hazard:
    subject: str  # the word CLIPSeg segments: short and visual
    scene: str  # English scene used as the prompt for non-English alerts
    terms: tuple[str, ...]  # lower-case surface forms, any language


HAZARDS: tuple[Hazard, ...] = (
    # Compound hazards first: "wildfire" must win over "fire", "heavy rain" over "rain".
    Hazard("wildfire", "a wildfire burning through a forest, flames and smoke",
           ("wildfire", "forest fire", "bushfire", "brush fire", "산불")),
    Hazard("tsunami", "a tsunami wave flooding a coastal town",
           ("tsunami", "지진해일", "쓰나미")),
    Hazard("heat wave", "a heat wave over a city, blazing sun and shimmering heat",
           ("heat wave", "heatwave", "extreme heat", "폭염")),
    Hazard("heavy rain", "heavy rain pouring over flooded streets",
           ("heavy rain", "torrential rain", "downpour", "rainstorm", "호우", "집중호우", "폭우")),
    Hazard("snow", "heavy snow covering roads and houses",
           ("heavy snow", "blizzard", "snowstorm", "snow", "대설", "폭설")),
    Hazard("chemical leak", "a toxic chemical gas leak from an industrial plant",
           ("chemical leak", "gas leak", "toxic gas", "hazardous material", "hazmat",
            "chemical spill", "화학물질", "유해화학", "가스 누출", "가스누출")),
    Hazard("landslide", "a landslide of mud and rocks sliding down a hill",
           ("landslide", "mudslide", "debris flow", "산사태")),
    Hazard("typhoon", "a typhoon with violent wind and rain hitting the coast",
           ("typhoon", "hurricane", "cyclone", "태풍")),
    Hazard("tornado", "a tornado funnel cloud touching the ground",
           ("tornado", "twister", "토네이도")),
    Hazard("earthquake", "an earthquake shaking collapsing buildings",
           ("earthquake", "quake", "seismic", "지진")),
    Hazard("flood", "a flood with water rising in the streets",
           ("flood", "flooding", "flash flood", "inundation", "홍수", "침수", "범람")),
    Hazard("explosion", "an explosion with a fireball and debris",
           ("explosion", "explode", "blast", "폭발")),
    Hazard("smoke", "thick smoke filling the air",
           ("smoke", "연기")),
    Hazard("fire", "a fire has broken out in a building, flames and smoke",
           ("fire", "blaze", "flames", "burning", "화재", "불이", "불길")),
)

FALLBACK = Hazard("emergency", "an emergency scene with warning lights", ())

# CAP 1.2 <event> values are free text ("Flood Warning"), so they go through the same lexicon.
_WORD = re.compile(r"[a-z]+(?:[ -][a-z]+)*")


@dataclass(frozen=True)
class Subject:
    word: str
    prompt: str
    matched: str | None  # the surface form that matched; None for the fallback


def _is_english(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    return latin / len(letters) >= 0.8


def _normalise(text: str) -> str:
    # NFKC folds full-width forms; control characters become spaces so they never reach a prompt.
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    return " ".join(text.split())


def _match(text: str) -> tuple[Hazard, str] | None:
    lowered = text.lower()
    for hazard in HAZARDS:
        for term in hazard.terms:
            if term.isascii():
                if re.search(rf"\b{re.escape(term)}", lowered):
                    return hazard, term
            elif term in lowered:
                return hazard, term
    return None


def primary_subject(text: str, event: str | None = None) -> Subject:
    """The hazard word to segment, and the English prompt to generate from."""
    clean = _normalise(text)
    found = _match(event) if event else None
    found = found or _match(clean)
    hazard, term = found if found else (FALLBACK, None)
    if _is_english(clean) and clean:
        prompt = clean if term else f"{clean}, {FALLBACK.scene}"
    else:
        prompt = hazard.scene
    return Subject(word=hazard.subject, prompt=prompt, matched=term)
