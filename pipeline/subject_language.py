"""The language of an alert, for the subject stage (`pipeline/subject.py`): a primary BCP-47 subtag.

The publisher's hint wins when it fits the alert's script: CAP's <language> defaults to en-US,
so a Korean alert may well say "en-US", and then the script decides. Hangul is Korean, kana is
Japanese, Han alone is Chinese, Greek is Greek and Thai is Thai. Cyrillic is told apart by its
letters where they decide: ї є ґ, or і without ы э, are Ukrainian; ы э ё without і are Russian;
ъ before a consonant (във, път, дъжд) is Bulgarian, as Russian writes ъ only before е ё ю я; the
letters of Belarusian, Serbian, Macedonian and the Turkic languages (ў ђ ј љ ќ ә қ ү …) leave it to
the model. Everything else goes to py3langid, a naive Bayes model over byte n-grams (BSD
licence, its model inside the wheel, no download, the same answer every time, tens of
microseconds a call) that knows about 140 languages, Haitian Creole and Tagalog among them.
The full model is used, not one cut down to the languages we have lexicons for: cut down, it
would call an Albanian or a Norwegian alert by the name of some lexicon and search only that
one; whole, it names the language, and a language without a lexicon searches every lexicon of
its script. On short texts it splits close languages between them, though (a Croatian alert
scores as Bosnian, an Indonesian one as Malay or Javanese, a Swedish one as Norwegian): when
its best language is one of those (`CLOSE`), the close language with a lexicon is taken if it
scores within `NEAR` nats per byte of it. Only the words in the alert's main script are classified, and one or two Latin words
are undetermined ("und"): at that length the model guesses among dozens of languages.
"""

from __future__ import annotations

import re

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from .lexicon import ALIASES, LANGUAGES, SCRIPTS

# Combining marks that sit inside words: decomposed Latin accents, Arabic harakat, Devanagari
# vowel signs (Python's \w misses them).
MARKS = r"\u0300-\u036f\u064b-\u065f\u0670\u0900-\u0903\u093a-\u094f\u0951-\u0957\u0962\u0963"
_SCRIPT_RES = {name: re.compile(f"[{chars}]") for name, chars in {
    "latin": r"A-Za-z\u00c0-\u024f\u1e00-\u1eff", "cyrillic": r"\u0400-\u052f",
    "arabic": r"\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\u08a0-\u08c9",
    "devanagari": r"\u0900-\u0963\u0966-\u097f",
    "hangul": r"\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f",
    "kana": r"\u3040-\u30ff\u31f0-\u31ff", "han": r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "greek": r"\u0370-\u03ff\u1f00-\u1fff", "thai": r"\u0e01-\u0e3a\u0e40-\u0e4e",
}.items()}
_SCRIPT_WORDS = {name: re.compile(f"(?:{_SCRIPT_RES[name].pattern}|[{MARKS}'’-])+")
                 for name in ("latin", "cyrillic", "arabic", "devanagari")}
_COUNTED = {"latin", "cyrillic", "arabic", "devanagari", "hangul", "cjk", "greek", "thai"}
# Scripts that, among the languages with a lexicon, only one writes.
_ONE_LANGUAGE = {"greek": "el", "thai": "th"}
# Cyrillic letters that decide between Ukrainian, Russian and Bulgarian, and those of other
# languages, which leave it to the model.
_CYRILLIC_OTHERS = re.compile("[ўђћџјљњѓќѕәғқңөұүһҗӣӯҳҷӑӗҫӳ]")
_UKRAINIAN = re.compile("[їєґ]")
_RUSSIAN = re.compile("[ыэё]")
_BULGARIAN = re.compile("ъ[бвгджзйклмнпрстфхцчшщ]")
_ID = LanguageIdentifier.from_model_file(MODEL_FILE)
_NOT_LANGUAGES = {"zxx"}
# Terse English (headlines, capitals, place names) scores as Nigerian Pidgin, an English-based
# creole, about as often as English: read it as English.
_READ_AS = {"pcm": "en"}
# Languages the model confuses on short texts with close ones that have a lexicon, and how
# close (nats per byte of the text) one of those must score to be taken instead. Croatian
# alerts score as Bosnian within 0.12 of Croatian, Indonesian ones as Javanese within 0.18,
# Swedish ones as Norwegian within 0.04; Bosnian, Serbian (Latin) and Malay alerts mostly
# score within 0.2 too and are read with the lexicon that has their words (hr.yaml holds the
# Bosnian and Serbian ones, id.yaml's are Malay's), a Norwegian one mostly further.
CLOSE = {"bs": ("hr",), "sr": ("hr",), "cnr": ("hr",), "ms": ("id",), "jv": ("id",),
         "no": ("sv", "da"), "nn": ("sv", "da"), "ltg": ("lv",)}
NEAR = 0.2


def _script(text: str) -> tuple[str | None, bool]:
    """The script most of the letters are in, and whether any is Japanese kana."""
    counts = {name: len(rx.findall(text)) for name, rx in _SCRIPT_RES.items()}
    kana = counts.pop("kana")
    counts["cjk"] = counts.pop("han") + kana
    counts["other"] = sum(map(str.isalpha, text)) - sum(counts.values())
    best = max(counts, key=counts.__getitem__)
    return (best if counts[best] > 0 else None), kana > 0


def fits(lang: str, script: str) -> bool:
    """Whether a language is written in a script (as `_script` names scripts)."""
    own = SCRIPTS.get(lang, "latin").split()
    return not _COUNTED.intersection(own) if script == "other" else script in own


def decide_language(text: str, hint: str | None) -> str:
    """The primary language subtag of a normalised alert text, given the publisher's hint."""
    script, kana = _script(text)
    tag = hint.strip().replace("_", "-").split("-")[0].lower() if isinstance(hint, str) else ""
    tag = ALIASES.get(tag, tag)
    if re.fullmatch("[a-z]{2,3}", tag) and tag not in {"und", "mul", "mis", "zxx"} and (
            script is None or fits(tag, script)):
        return tag
    if script is None:
        return "und"
    if script in {"hangul", "cjk"}:
        return "ko" if script == "hangul" else "ja" if kana else "zh"
    if script in _ONE_LANGUAGE:
        return _ONE_LANGUAGE[script]
    # Only the words in the alert's main script: "fire near المبنى" is about "fire near".
    words = _SCRIPT_WORDS.get(script)
    sample = " ".join(words.findall(text)) if words else text
    if script == "latin" and sample.count(" ") < 2:
        # One or two Latin words are a coin toss between dozens of languages ("fire" scores as
        # Kurdish): undetermined, so every Latin lexicon is searched and the scene is the prompt.
        return "und"
    if script == "cyrillic" and (told := _cyrillic(sample)) is not None:
        return told
    return _classify(sample, script)


def _cyrillic(text: str) -> str | None:
    """Ukrainian, Russian or Bulgarian where the letters decide it, else None."""
    text = text.lower()
    if _CYRILLIC_OTHERS.search(text):
        return None
    russian = _RUSSIAN.search(text) is not None
    ukrainian = _UKRAINIAN.search(text) is not None or "і" in text
    if ukrainian != russian:
        return "uk" if ukrainian else "ru"
    if not russian and _BULGARIAN.search(text):
        return "bg"
    return None


def _classify(sample: str, script: str) -> str:
    """The model's best language in the script, or a close one that has a lexicon."""
    best = _ID.classify(sample)[0]
    if best not in _NOT_LANGUAGES and best not in CLOSE and fits(best, script):
        return _READ_AS.get(best, best)  # the common case: one argmax, no ranking
    ranked = [(_READ_AS.get(lang, lang), score) for lang, score in _ID.rank(sample)
              if lang not in _NOT_LANGUAGES and fits(lang, script)]
    if not ranked:
        return "und"
    best, top = ranked[0]
    if best in CLOSE:
        near = next(((lang, score) for lang, score in ranked
                     if lang in CLOSE[best] and lang in LANGUAGES), None)
        if near is not None and top - near[1] <= NEAR * len(sample.encode()):
            return near[0]
    return best
