"""The language of an alert, for the subject stage (`pipeline/subject.py`): a primary BCP-47 subtag.

The publisher's hint wins when it fits the alert's script: CAP's <language> defaults to en-US,
so a Korean alert may well say "en-US", and then the script decides. Hangul is Korean, kana is
Japanese, Han alone is Chinese. Latin, Cyrillic, Arabic and Devanagari text goes to py3langid, a
naive Bayes model over byte n-grams (BSD licence, its model inside the wheel, no download, the
same answer every time, tens of microseconds a call) that knows about 140 languages, Haitian
Creole and Tagalog among them. The full model is used, not one cut down to the languages we have
lexicons for: cut down, it calls a Polish alert English; whole, it says Polish, and the scene
becomes the prompt. Only the words in the alert's main script are classified, and one or two
Latin words are undetermined ("und"): at that length the model guesses among dozens of languages.
"""

from __future__ import annotations

import re

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from .lexicon import ALIASES, SCRIPTS

# Combining marks that sit inside words: decomposed Latin accents, Arabic harakat, Devanagari
# vowel signs (Python's \w misses them).
MARKS = r"\u0300-\u036f\u064b-\u065f\u0670\u0900-\u0903\u093a-\u094f\u0951-\u0957\u0962\u0963"
_SCRIPT_RES = {name: re.compile(f"[{chars}]") for name, chars in {
    "latin": r"A-Za-z\u00c0-\u024f\u1e00-\u1eff", "cyrillic": r"\u0400-\u052f",
    "arabic": r"\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\u08a0-\u08c9",
    "devanagari": r"\u0900-\u0963\u0966-\u097f",
    "hangul": r"\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f",
    "kana": r"\u3040-\u30ff\u31f0-\u31ff", "han": r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
}.items()}
_SCRIPT_WORDS = {name: re.compile(f"(?:{_SCRIPT_RES[name].pattern}|[{MARKS}'’-])+")
                 for name in ("latin", "cyrillic", "arabic", "devanagari")}
_COUNTED = {"latin", "cyrillic", "arabic", "devanagari", "hangul", "cjk"}
_ID = LanguageIdentifier.from_model_file(MODEL_FILE)
_NOT_LANGUAGES = {"zxx"}
# Terse English (headlines, capitals, place names) scores as Nigerian Pidgin, an English-based
# creole, about as often as English: read it as English.
_READ_AS = {"pcm": "en"}


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
    # Only the words in the alert's main script: "fire near المبنى" is about "fire near".
    words = _SCRIPT_WORDS.get(script)
    sample = " ".join(words.findall(text)) if words else text
    if script == "latin" and sample.count(" ") < 2:
        # One or two Latin words are a coin toss between dozens of languages ("fire" scores as
        # Kurdish): undetermined, so every Latin lexicon is searched and the scene is the prompt.
        return "und"
    best = _ID.classify(sample)[0]
    if best not in _NOT_LANGUAGES and fits(best, script):
        return _READ_AS.get(best, best)
    # The model knows languages in other scripts too: take its best guess in this one.
    ranked = (lang for lang, _ in _ID.rank(sample)
              if lang not in _NOT_LANGUAGES and fits(lang, script))
    return _READ_AS.get(lang := next(ranked, "und"), lang)
