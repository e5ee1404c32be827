"""The subject stage (the seed's step 3a), first in the graph: the alert's primary hazard, the
word CLIPSeg segments and the English prompt.

Alerts arrive in the publisher's language; the text-to-image and CLIP models read English. The
hazard comes from the first of these that names one: the CAP event codes (SAME "TOR", CAP-CP
"flood"), the CAP `event` text ("Flood Warning", "Alerta de tsunami"), the alert text. A later
source may only refine it (SAME "FFW" and the text "flash flood emergency" give the emergency)
or name a test or a tsunami, which win anywhere. Within one source the first hazard named leads
and a finer one named anywhere refines it ("a fire started the wildfire" is a wildfire); a word
that names a hazard only in general (Unwetter, "severe weather") gives way to any hazard named
specifically ("Unwetterwarnung: Hochwasser an der Ahr" is a flood); at one place the longest
term wins ("hurricane-force winds" is wind, not a hurricane). The lexicon and
its rules (whole words, Korean context, Chinese and Japanese false friends) are in `lexicon.py`.

The language (`subject_language.py`: the hint when it fits the script, else the script or an
offline model) picks the lexicons to search: its own, then English. An English alert is its own
prompt (ASCII, at most `MAX_PROMPT` characters, cut at a word; the hazard's scene is appended
when the text does not name it); every other alert gets its hazard's English scene, so its words
never reach the model. A notice (a test, a 911 outage, boil water, a missing person) always gets
its scene, and an alert that names no hazard a neutral one. Everything is compiled at import; a
call is pure.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from .lexicon import (CAP_CP, EXCLUSIONS, GENERIC, HAZARDS, LANGUAGES, NEUTRAL_SCENE,
                      NEUTRAL_SUBJECT, SAME, SCRIPTS, TERMS)
from .phrases import phrases_for
from .stage import Context, Kind, Port, Row, Stage, row_by_row
from .subject_language import MARKS, decide_language, fits

MAX_PROMPT = 400  # CLIP reads 77 tokens anyway; this bounds what we store and log


@dataclass(frozen=True)
class Subject:
    word: str  # what CLIPSeg segments
    prompt: str  # English, ASCII, at most MAX_PROMPT characters
    matched: str | None  # the surface form or code that named the hazard; None for none
    hazard: str | None = None  # a key of lexicon.HAZARDS; None when no hazard was found
    language: str = "und"  # the primary language subtag decided for the alert
    source: str = "none"  # "event_code", "event", "text" or "none"


def primary_subject(text: str, event: str | None = None, *, language: str | None = None,
                    event_codes: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> Subject:
    """The hazard, the word to segment and the English prompt for one alert."""
    clean = _normalise(text if isinstance(text, str) else "")
    lang = decide_language(clean, language)
    chain = _chain(lang)
    found = None  # (hazard index, source, surface, named only in general)
    text_hits = _search(clean, chain)
    event_hits = _search(_normalise(event), _event_chain(chain)) if isinstance(event, str) else {}
    for source, hits in (("event_code", _codes(event_codes)), ("event", event_hits),
                         ("text", text_hits)):
        chosen = _choose(hits, found)
        if chosen in hits and (found is None or chosen != found[0] or
                               found[3] and not hits[chosen][2]):
            found = (chosen, source, hits[chosen][1], hits[chosen][2])
    own = _ascii(clean) if lang == "en" else ""
    english = re.search("[A-Za-z]", own) is not None
    if found is None:
        prompt = _join(own, NEUTRAL_SCENE) if english else NEUTRAL_SCENE
        return Subject(NEUTRAL_SUBJECT, prompt, None, None, lang, "none")
    hazard = HAZARDS[found[0]]
    if hazard.notice or not english:
        prompt = hazard.scene
    elif any(p == found[0] or p in _ANCESTORS[found[0]] for p in text_hits):
        prompt = _clip(own, MAX_PROMPT)  # the alert names its hazard: its words are the prompt
    else:
        prompt = _join(own, hazard.scene)
    return Subject(hazard.subject, prompt, found[2], hazard.key, lang, found[1])


def alt_text(text: str, subject: Subject, limit: int = 1_000) -> str:
    """What a screen reader says for the animation, in the alert's language: what it shows,
    then the alert's own words (the animation never replaces them), at most `limit` characters.
    The sentences are `phrases/<language>.yaml` (`phrases.py`); a language without them is
    described in English."""
    words = _normalise(text) if isinstance(text, str) else ""
    phrases = phrases_for(subject.language, words)
    shows = phrases.describe(subject.hazard)
    # one character to spare, as the alt text always had
    words = _clip(words, max(0, limit - phrases.frame(shows) - 1))
    return phrases.with_words(shows, words)


# --- text ------------------------------------------------------------------------------------

def _normalise(text: str) -> str:
    # NFKC folds full-width forms; control characters become spaces so they never reach a prompt.
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():
        text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    return " ".join(text.split())


_PUNCT = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                        "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00b0": " degrees "})


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.translate(_PUNCT))
    return " ".join(text.encode("ascii", "ignore").decode("ascii").split())


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[:cut if cut > limit // 2 else limit].rstrip(" ,;:-")


def _join(own: str, scene: str) -> str:
    own = _clip(own, MAX_PROMPT - len(scene) - 2) if re.search("[A-Za-z]", own) else ""
    return f"{own}, {scene}" if own else scene


def fit_prompt(prompt: str, tokenizer) -> str:
    """The prompt as a text encoder reads it, within its tokenizer's `model_max_length` tokens
    (CLIP's 77, special tokens included), so that nothing is cut off: the hazard's scene first,
    whole (cut at a word only when it alone is too long), then as much of the alert's own words
    as fits, cut at a word. A prompt without a scene (an English alert that names its hazard)
    keeps as many of its words as fit. Left as the subject stage made it, an English prompt
    carries its scene last, which is exactly what the encoder would cut."""
    limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(limit, int) or limit >= 1_000_000:  # no limit configured
        return prompt

    def fits(text: str) -> bool:
        # (verbose=False: measuring a text that is too long is no reason to warn)
        return len(tokenizer.encode(text, add_special_tokens=True, verbose=False)) <= limit

    scene, own = _scene_and_words(prompt)
    if not scene or not fits(scene):
        return _longest_start(scene or prompt, fits)
    if not own:
        return scene
    words = own.split(" ")
    k = _most(len(words), lambda k: fits(_with_scene(scene, words[:k])))
    return _with_scene(scene, words[:k])


_SCENES = sorted({NEUTRAL_SCENE, *(h.scene for h in HAZARDS)}, key=len, reverse=True)


def _scene_and_words(prompt: str) -> tuple[str, str]:
    """The scene a prompt carries ("" for none) and the alert's own words in it ("" for none),
    as `primary_subject` joined them."""
    for scene in _SCENES:
        if prompt == scene:
            return scene, ""
        if prompt.endswith(f", {scene}"):
            return scene, prompt[:-len(scene) - 2]
    return "", prompt


def _with_scene(scene: str, words: list[str]) -> str:
    own = " ".join(words).rstrip(" ,;:-")
    return f"{scene}, {own}" if own else scene


def _longest_start(text: str, fits) -> str:
    """The longest start of `text` that fits, cut at a word; at a character if its first word
    alone does not fit."""
    if fits(text):
        return text
    words = text.split(" ")
    k = _most(len(words), lambda k: fits(" ".join(words[:k]).rstrip(" ,;:-")))
    if k:
        return " ".join(words[:k]).rstrip(" ,;:-")
    return text[:_most(len(text), lambda n: fits(text[:n]))]


def _most(n: int, fits) -> int:
    """The largest k in 0..n for which fits(k), fits being true up to some k and false after
    (0 when only fits(0)); a binary search, as each try tokenizes."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


# --- search order ----------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _chain(lang: str) -> tuple[str, ...]:
    """Lexicons to search, in order: the language's own and English (loanwords, mixed alerts).
    A language without a lexicon also tries those of its script (Ukrainian → Russian), and
    Chinese and Japanese, which share Han characters, try each other's (a kanji-only Japanese
    headline such as 大津波警報 reads as Chinese)."""
    script = SCRIPTS.get(lang, "latin").split()[0]
    kin = tuple(other for other in _LEXICONS if other not in (lang, "en") and fits(other, script))
    if lang in _LEXICONS:
        return (lang,) if lang == "en" else (lang, "en", *(kin if script == "cjk" else ()))
    return ("en", *kin)


@lru_cache(maxsize=512)
def _event_chain(chain: tuple[str, ...]) -> tuple[str, ...]:
    # An event is a short, controlled hazard name: any language may name it.
    return chain + tuple(lang for lang in _LEXICONS if lang not in chain)


# --- matching --------------------------------------------------------------------------------

_WORD = f"[\\w{MARKS}]"  # Python's \w misses the combining marks inside words
_COMMON = {0x130: "i", 0x2019: "'", 0x2018: "'", 0x2bc: "'", 0xb4: "'", 0x2010: "-",
           0x2011: "-", 0x2013: "-", 0x2014: "-"}
_FOLDS = {
    "lower": _COMMON,
    "latin": {**_COMMON, **{cp: d[0] for cp in [*range(0xc0, 0x250), *range(0x1e00, 0x1f00)]
                            if len(d := unicodedata.normalize("NFD", chr(cp))) > 1 and
                            d[0].isascii() and all(map(unicodedata.combining, d[1:]))},
              ord("ø"): "o", ord("Ø"): "O", ord("ł"): "l", ord("Ł"): "L", ord("đ"): "d",
              ord("Đ"): "D", ord("ı"): "i"},
    "cyrillic": {**_COMMON, ord("ё"): "е", ord("Ё"): "Е"},
    # Greek without tonos and dialytika, and one sigma (capitals too, so that lower-casing a
    # capital at the end of a word never makes the final form).
    "greek": {**_COMMON, **{cp: d[0] for cp in [*range(0x370, 0x400), *range(0x1f00, 0x2000)]
                            if len(d := unicodedata.normalize("NFD", chr(cp))) > 1 and
                            "\u0391" <= d[0] <= "\u03c9" and
                            all(map(unicodedata.combining, d[1:]))},
              ord("ς"): "σ", ord("Σ"): "σ"},
    # Arabic is written with or without vowel marks, and alef forms vary: fold them away.
    "arabic": {**_COMMON, **dict.fromkeys([*range(0x64b, 0x660), 0x670, 0x640]),
               **dict.fromkeys(map(ord, "أإآٱ"), "ا"), ord("ى"): "ي", ord("ة"): "ه"},
}


def _fold(text: str, table: dict) -> tuple[str, list[int] | None]:
    """Folded text, and where each folded character came from when the lengths differ."""
    folded = text.translate(table).lower()
    if len(folded) == len(text):
        return folded, None
    index = [i for i, c in enumerate(text) for _ in c.translate(table).lower()]
    return folded, index + [len(text)]


_KEYS = {h.key: i for i, h in enumerate(HAZARDS)}


@dataclass(frozen=True)
class _Lexicon:
    table: dict
    starts: re.Pattern  # where some term of the language may start
    # (hazard index, its terms, whether they name it only in general): the specific terms in
    # HAZARDS order, then the generic ones
    terms: tuple[tuple[int, re.Pattern, bool], ...]
    exclusions: re.Pattern | None


def _compile(lang: str) -> _Lexicon:
    style, fold = LANGUAGES[lang]
    left, right = (f"(?<!{_WORD})", f"(?!{_WORD})") if style == "spaced" else ("", "")

    def source(term: str) -> str:
        term = unicodedata.normalize("NFKC", term).translate(_FOLDS[fold]).lower()
        if re.compile(term).groups:
            raise ValueError(f"{lang} term {term!r}: use non-capturing groups")
        return term.replace("~", f"{_WORD}*")  # German compounds: the word goes on here

    unknown = (set(TERMS[lang]) | set(GENERIC[lang])) - set(_KEYS)
    if unknown:
        raise ValueError(f"{lang}: terms for unknown hazards {sorted(unknown)}")
    alternatives = [(p, "|".join(map(source, group)), generic)
                    for generic, table in ((False, TERMS[lang]), (True, GENERIC[lang]))
                    for p, group in sorted((_KEYS[key], group) for key, group in table.items())
                    if group]
    terms = tuple((p, re.compile(f"{left}(?:{alt}){right}"), generic)
                  for p, alt, generic in alternatives)
    starts = re.compile(f"(?={left}(?:{'|'.join(alt for _, alt, _ in alternatives)}){right})")
    excluded = "|".join(map(source, EXCLUSIONS.get(lang, ())))
    exclusions = re.compile(f"{left}(?:{excluded}){right}") if excluded else None
    return _Lexicon(_FOLDS[fold], starts, terms, exclusions)


_LEXICONS = {lang: _compile(lang) for lang in LANGUAGES}
_ANCESTORS: dict[int, frozenset[int]] = {}  # hazard → the more general hazards it refines
for _i, _h in enumerate(HAZARDS):
    _up, _parent = set(), _h.parent
    while _parent is not None:
        _up.add(_KEYS[_parent])
        _parent = HAZARDS[_KEYS[_parent]].parent
    _ANCESTORS[_i] = frozenset(_up)


# hits: hazard index → (where it is first named, how, whether only in general)
_Hits = dict[int, tuple[int, str, bool]]


def _choose(hits: _Hits, before: tuple[int, str, str, bool] | None) -> int | None:
    """The hazard one source names, given what the sources before it decided (hazard, source,
    surface, whether named only in general): the first one it names specifically (alerts lead
    with their headline; a generic word such as Unwetter or "severe weather" gives way to any
    specific one), refined by the first finer one it names, again and again (flood → flash
    flood → flash flood emergency); an urgent one (a test, a tsunami) named anywhere wins
    outright."""
    current = None if before is None else before[0]
    if before is not None and before[3] and not all(generic for *_, generic in hits.values()):
        current = None  # what was named in general gives way to a hazard named specifically
    urgent = [p for p in hits if HAZARDS[p].urgent and (current is None or p < current)]
    if urgent:
        return min(urgent)
    if current is None:
        if not hits:
            return None
        current = min(hits, key=lambda p: (hits[p][2], hits[p][0]))
    while finer := [p for p in hits if current in _ANCESTORS[p]]:
        current = min(finer, key=lambda p: (hits[p][2], hits[p][0]))
    return current


def _search(text: str, chain: tuple[str, ...]) -> _Hits:
    """Hazards the text names, with where and how each is first named, from the first lexicon
    in the chain that finds any. A false friend one lexicon excludes stays excluded for the
    lexicons after it (雪崩式 is no avalanche in Japanese either). A hazard named both in general
    and specifically counts where it is first named specifically."""
    for lang in chain:
        lex = _LEXICONS[lang]
        folded, index = _fold(text, lex.table)
        if lex.exclusions is not None:
            for excluded in lex.exclusions.finditer(folded):
                # blanks keep every other character where it was
                a, b = excluded.span()
                folded = f"{folded[:a]}{' ' * (b - a)}{folded[b:]}"
                a, b = (a, b) if index is None else (index[a], index[b])
                text = f"{text[:a]}{' ' * (b - a)}{text[b:]}"
        hits: _Hits = {}
        general: _Hits = {}
        for start in lex.starts.finditer(folded):
            pos, best, end, generic = start.start(), None, -1, False
            for priority, terms, only in lex.terms:  # the longest term here; a tie to the first
                match = terms.match(folded, pos)
                if match is not None and match.end() > end:
                    best, end, generic = priority, match.end(), only
            found = general if generic else hits
            if best is not None and best not in found:
                found[best] = (pos, text[pos:end] if index is None else
                               text[index[pos]:index[end]], generic)
        for priority, hit in general.items():
            hits.setdefault(priority, hit)
        if hits:
            return hits
    return {}


def _codes(event_codes: Iterable[tuple[str, str]] | Mapping[str, str]) -> _Hits:
    """Hazards named by CAP eventCode pairs (valueName, value); unknown names and codes are
    ignored, and so is anything that is not a pair of strings."""
    pairs = event_codes.items() if isinstance(event_codes, Mapping) else event_codes or ()
    found: _Hits = {}
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            continue
        name, values = pair
        for value in [values] if isinstance(values, str) else (
                values if isinstance(values, (tuple, list)) else ()):
            if not (isinstance(name, str) and isinstance(value, str)):
                continue
            name_, value_ = name.strip().casefold(), value.strip()
            if name_ == "same":
                key = SAME.get(value_.upper())
            elif name_.startswith("profile:cap-cp:event"):
                key = CAP_CP.get(value_.casefold())
            else:
                key = None
            if key is not None:
                found.setdefault(_KEYS[key], (len(found), value_, False))
    return found


@row_by_row
def _run(ctx: Context, row: Row) -> dict:
    return {"subject": primary_subject(row["text"], row["event"], language=row["language"],
                                       event_codes=row["event_codes"])}


STAGE = Stage("subject", _run, inputs=("text", "event", "language", "event_codes"),
              outputs=(Port("subject", Kind.VALUE, Subject,
                            example=lambda: primary_subject("warm-up")),),
              doc="the hazard to segment and the English prompt to generate from")
