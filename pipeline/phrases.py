"""What is said about an animation in the alert's own language, read from data: the alt text's
first sentence (`subject.alt_text`) and the CAP `resourceDesc` of each rendition
(`agents.completion`).

The data is package data in `phrases/` beside this module, one YAML file per language, named by
its primary BCP-47 subtag (`ko.yaml`) or, for a second script of one language, subtag and script
(`zh-Hant.yaml` beside `zh.yaml`):

- `shows`: the sentence for an animation of a hazard, with `{hazard}` where its name goes
  ("{hazard} 나타낸 애니메이션입니다");
- `neutral`: the sentence when the alert names no hazard;
- `alert`: how the sentence and the alert's own words go together, `{shows}` first and `{text}`
  last ("{shows}. 경보 내용: {text}"); without words the sentence stands alone;
- `no_hazard`: what stands for the hazard in `media` when none was found;
- `hazards`: every hazard of `lexicons/shared.yaml`, named as it stands in the file's sentences
  (with the article, case or particle they need: de "eines Erdbebens", ko "지진을", ru
  "землетрясение"), so that each sentence reads as a native speaker would say it;
- `media`: the CAP `resourceDesc` of each rendition, by media type (`image/gif`, `image/webp`,
  `video/mp4`, `image/jpeg`, and `other` for any other), each with `{hazard}`;
- `marks`: for a language written in two scripts, characters only this file's script writes;
  the file whose marks the alert's words hold most is used (the plain subtag's on a tie).

English stays as it always was: its hazards are named by their English subjects. A language
without a file is described in English.

Everything is read once, on import, and checked (`load_phrases`) with the YAML reading of
`lexicon.py`: a file that is not valid YAML, a duplicated key, an unknown field, a sentence
without its `{hazard}` or with a field it does not have, a hazard that is missing or unknown, a
second script without marks are refused with `PhraseError`, naming the file and the field.
"""

from __future__ import annotations

import re
import string
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from .lexicon import HAZARDS, LexiconError, _Data, _read

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ENGLISH = "en"
MEDIA = ("image/gif", "image/webp", "video/mp4", "image/jpeg", "other")
_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?")  # ko, zh-Hant
_Text = Annotated[str, StringConstraints(min_length=1)]


class PhraseError(ValueError):
    """A phrase file that is missing, not valid YAML or wrong; the message names the file and
    the field."""


def _fields(template: str) -> list[str]:
    """The `{name}`s a template fills in, in order; a conversion or format spec is refused."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{template!r}: {error} (a literal brace is written twice)") from None
    names = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"{template!r}: {{{name}}} takes no format or conversion")
        names.append(name)
    return names


def _exactly(template: str, wanted: tuple[str, ...]) -> str:
    found = _fields(template)
    if sorted(found) != sorted(wanted):
        has = ", ".join(f"{{{f}}}" for f in found) or "none"
        if not wanted:
            raise ValueError(f"{template!r}: literal text only, no {{field}} (it has {has}; a "
                             "literal brace is written twice)")
        say = " and ".join(f"{{{w}}}" for w in wanted)
        raise ValueError(f"{template!r}: needs {say}, once each and no other field (it has "
                         f"{has})")
    return template


class Phrases(_Data):
    """One `<tag>.yaml`: the sentences of one language and its names of the hazards."""

    shows: _Text
    neutral: _Text
    alert: _Text
    no_hazard: _Text
    hazards: dict[str, _Text] = Field(min_length=1)
    media: dict[str, _Text]
    marks: str = ""

    @field_validator("shows")
    @classmethod
    def _shows(cls, shows: str) -> str:
        return _exactly(shows, ("hazard",))

    @field_validator("neutral", "no_hazard")
    @classmethod
    def _plain(cls, text: str) -> str:
        return _exactly(text, ())

    @field_validator("alert")
    @classmethod
    def _alert(cls, alert: str) -> str:
        _exactly(alert, ("shows", "text"))
        if _fields(alert) != ["shows", "text"] or not alert.endswith("{text}"):
            raise ValueError(f"{alert!r}: {{shows}} comes first and {{text}}, the alert's own "
                             "words, last")
        return alert

    @field_validator("hazards")
    @classmethod
    def _names(cls, hazards: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, name in hazards.items():
            try:
                _exactly(name, ())
            except ValueError as error:
                problems.append(f"{key}: {error}")
        if problems:
            raise ValueError("\n".join(problems))
        return hazards

    @field_validator("media")
    @classmethod
    def _media(cls, media: dict[str, str]) -> dict[str, str]:
        problems = [f"{kind}: not a media type described here (those are: {', '.join(MEDIA)})"
                    for kind in media if kind not in MEDIA]
        problems += [f"{kind}: missing" for kind in MEDIA if kind not in media]
        for kind, text in media.items():
            try:
                _exactly(text, ("hazard",))
            except ValueError as error:
                problems.append(f"{kind}: {error}")
        if problems:
            raise ValueError("\n".join(problems))
        return media

    @model_validator(mode="after")
    def _every_hazard(self) -> Phrases:
        keys = [h.key for h in HAZARDS]
        problems = [f"hazards.{key}: no such hazard in lexicons/shared.yaml"
                    for key in self.hazards if key not in keys]
        problems += [f"hazards.{key}: missing (every hazard of lexicons/shared.yaml is named)"
                     for key in keys if key not in self.hazards]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def name(self, hazard: str | None) -> str:
        """The hazard's name as it stands in this file's sentences."""
        return self.no_hazard if hazard is None else self.hazards[hazard]

    def describe(self, hazard: str | None) -> str:
        """The alt text's first sentence: the hazard shown, or the neutral sentence."""
        return self.neutral if hazard is None else self.shows.format(hazard=self.hazards[hazard])

    def with_words(self, shows: str, words: str) -> str:
        """The alt text: the sentence, then the alert's own words (none: the sentence alone)."""
        return self.alert.format(shows=shows, text=words) if words else shows

    def frame(self, shows: str) -> int:
        """How many characters the sentence and what joins the words to it take."""
        return len(self.alert.format(shows=shows, text=""))

    def resource(self, media_type: str, hazard: str | None) -> str:
        """A CAP resourceDesc: what the rendition is and what it shows."""
        template = self.media.get(media_type, self.media["other"])
        return template.format(hazard=self.name(hazard))


def load_phrases(folder: Traversable | Path | None = None) -> dict[str, Phrases]:
    """Read and check every phrase file of a folder (by default the package's own), by tag."""
    folder = files(__package__) / "phrases" if folder is None else folder
    try:
        names = sorted(entry.name for entry in folder.iterdir()
                       if entry.name.endswith(".yaml") and entry.is_file())
    except OSError as error:
        raise PhraseError(f"{folder}: cannot list the phrases ({error})") from None
    found: dict[str, Phrases] = {}
    for name in names:
        tag = name.removesuffix(".yaml")
        if not _TAG.fullmatch(tag):
            raise PhraseError(f"{folder / name}: a phrase file is named by its language's "
                              "primary subtag (ko.yaml), or subtag and script (zh-Hant.yaml)")
        try:
            found[tag] = _read(folder / name, Phrases)
        except LexiconError as error:
            raise PhraseError(str(error)) from None
    problems = []
    if ENGLISH not in found:
        problems.append(f"{folder}/{ENGLISH}.yaml: missing (a language without phrases is "
                        "described in English)")
    for tag, phrases in found.items():
        base = tag.split("-")[0]
        if tag == base:
            continue
        if base not in found:
            problems.append(f"{folder}/{tag}.yaml: no {base}.yaml beside it")
            continue
        for each in (tag, base):
            if not found[each].marks:
                problems.append(f"{folder}/{each}.yaml: marks: empty (with {tag}.yaml and "
                                f"{base}.yaml, the characters only its script writes pick it)")
        shared = sorted(set(phrases.marks) & set(found[base].marks))
        if shared:
            problems.append(f"{folder}/{tag}.yaml: marks: {''.join(shared)} also in "
                            f"{base}.yaml's marks")
    if problems:
        raise PhraseError("\n".join(problems))
    return found


@cache
def phrases() -> dict[str, Phrases]:
    """The package's phrases, read once."""
    return load_phrases()


def phrases_for(language: str | None, text: str = "") -> Phrases:
    """The phrases of a language (a primary subtag, as the subject stage decides it); of a
    language written in two scripts, the file whose marks `text` holds most; English for a
    language without a file."""
    every = phrases()
    base = (language or "").split("-")[0].lower()
    if base not in every:
        return every[ENGLISH]
    options = [tag for tag in every if tag == base or tag.startswith(f"{base}-")]
    if len(options) == 1 or not text:
        return every[base]
    counts = {tag: sum(map(every[tag].marks.__contains__, text)) for tag in options}
    return every[max(options, key=lambda tag: (counts[tag], tag == base))]


PHRASES: dict[str, Phrases] = phrases()
