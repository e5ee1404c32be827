"""The hazard lexicon that the subject stage (`pipeline/subject.py`) matches alerts against,
read from data.

The data is package data in `lexicons/` beside this module, YAML (no code, comments allowed):

- `<tag>.yaml` per language, named by its primary BCP-47 subtag (`ko.yaml`): `style` and `fold`
  (how it matches, below), `script` (its writing systems, space-separated; default `latin`),
  `aliases` (other subtags meaning it: `kor`), `fragments`, `terms` (hazard key → regular
  expressions), `generic` (the same, for words that name a hazard only in general) and
  `exclusions` (regular expressions). A new language is a new file, a place in
  `shared.yaml`'s two lists, and its tests.
- `shared.yaml`: what every language shares. The `hazards`, each with ONE English `subject` and
  ONE English `scene`; `neutral_subject` and `neutral_scene` for an alert that names none;
  `languages`, the order the lexicons are searched in (see `subject._chain`); `cap_preference`,
  which language of a multilingual CAP alert is animated (English first); `same` and `cap_cp`,
  the CAP event codes; `scripts` and `aliases` of languages without a lexicon.
- `fragments` are regular-expression pieces a file repeats: `{name}` in a term or an exclusion
  stands for the fragment `name` of the same file (`{not_inside}산불`). Only an identifier in
  braces is a reference, so quantifiers such as `{0,2}` stay what they are; `\\{` is a literal
  brace. Fragments do not nest.

Everything is read once, on import, and checked (`load_lexicons`): a file that is not valid
YAML, a duplicated key, an unknown field, a term that is not a regular expression or has a
capturing group, a term for an unknown hazard, an unknown fragment, a language missing from an
order are refused with `LexiconError`, naming the file and the field. The tables below are what
the rest of the code reads.

How the matcher uses it:

- Which hazard, when an alert names several: the one it names FIRST (alerts lead with their
  headline: "호우경보 … 산사태, 침수 위험" is heavy rain, "Landslide risk after heavy rain" is a
  landslide), refined by any finer hazard it names anywhere (`parent` points from the finer hazard
  to its part: "a fire started the wildfire" is a wildfire, "flood watch and flash flood warning"
  a flash flood). An `urgent` hazard named anywhere wins outright: a test ("this is a test of the
  tornado warning system" must never look like a tornado) and a tsunami (the earthquake report
  that announces one is about the wave). The CAP event codes, then the CAP event text, then the
  alert text decide in that order; a later one only refines or overrides the same way. At one
  place in the text the longest term wins ("hurricane-force winds" is wind, 지진해일 a tsunami).
- `generic` terms name a hazard only in general, as a warning's heading does ("Unwetterwarnung",
  "severe weather", "κακοκαιρία", "cuaca ekstrem"): any hazard the same source names with a
  specific term comes first, wherever it is named ("Amtliche Unwetterwarnung: Hochwasser an der
  Ahr" is a flood), and a generic hazard from an earlier source (the CAP event) gives way to a
  specific one from a later one. Named alone, a generic term is its hazard.
- `HAZARDS` order breaks the remaining ties: a finer hazard comes before its part (checked on
  load), so the finest of several candidates wins.
- Every hazard has ONE English `subject` (the short noun CLIPSeg segments) and ONE English `scene`
  (the prompt for a non-English alert, ASCII). A `notice` never shows disaster imagery: its scene
  is the prompt in every language, because its text names hazards that are not happening ("a
  test of the tornado warning system") or describes a real person.
- `TERMS[language][hazard]` are regular expressions, written lower-case in the language's own
  spelling; the matcher folds alert and terms alike (`fold`: "latin" lower-case without accents,
  "lower" lower-case only, as German umlauts and Vietnamese tones carry meaning, "cyrillic" also
  ё→е, "greek" also without tonos and dialytika and with one sigma, "arabic" also drops diacritics and tatweel and unifies alef, alef maqsura and ta marbuta),
  so accents written here are optional in an alert. Only non-capturing groups.
- A "spaced" language matches whole words: a term must start and end at a word boundary, so
  inflections are spelled out ("floods?", "flood(?:s|ing|ed)?", Russian case endings, Arabic
  clitics و ف ب ل ال). German compounds mark where a term may be glued to other words:
  "~brand(?:e|es|s)?" is any compound ending in "brand" (Großbrand), "hochwasser~" any compound
  starting with it (Hochwasserwarnung). An "unspaced" language's terms carry their own context:
  Chinese and Japanese terms are specific multi-character words; Korean terms match inside an
  eojeol, so a noun may carry any particle or suffix (화재가, 홍수경보), and the fragment
  `{not_inside}` forbids a syllable before a term that would otherwise sit inside another word
  (계산불가 holds 산불, 문화산업 holds 화산).
- `EXCLUSIONS[language]` are phrases that CONTAIN a term and must not count: false friends
  (문화재 holds 화재, "weinbrand" holds "brand", 坐着火车 holds 着火, 最高潮 holds 高潮) and the
  "no tsunami is expected" of earthquake reports, which each language blanks first. They are
  blanked before the terms are matched. False friends that hold no term (火曜日, 火锅, "firearm")
  need no entry; the tests keep a wider list of false friends per language that must find no
  hazard.
- Korean 연기 is smoke, a postponement (延期: 행사가 연기되었습니다) and acting (演技): smoke needs
  the words that go with smoke (연기가 자욱, 검은 연기, 연기 흡입, 유독가스), and a bare 연기 finds
  nothing. Korean 불 (fire) likewise only counts as 불이 나/났/붙/번지 or 불길, never inside 불이익,
  불편, 불법. Vietnamese lũ is a flood only with a flood word (lũ quét, lũ lụt, mưa lũ): lũ trẻ is
  "the kids".
- `SAME` maps the US SAME/EAS event codes (and those Canada adds) to hazards; codes that name no
  hazard (CEM civil emergency, EVI evacuation, SPW shelter in place, ADR, LAE, CDW, LEW, NIC, EAN,
  SPS, SVS, …) are absent on purpose, so that the alert's own words decide. `CAP_CP` does the
  same for Canada's CAP-CP event list.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, StringConstraints, ValidationError,
                      field_validator, model_validator)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SHARED = "shared.yaml"  # every other *.yaml in the folder is one language's lexicon

_Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]  # a hazard
_Tag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]  # a primary language subtag
_Script = Annotated[str, StringConstraints(pattern=r"^[a-z]+(?: [a-z]+)*$")]
_Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]  # a fragment
_Text = Annotated[str, StringConstraints(min_length=1)]
_REFERENCE = re.compile(r"(?<!\\)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LexiconError(ValueError):
    """A lexicon file that is missing, not valid YAML or wrong; the message names the file and
    the field."""


class _Data(BaseModel):
    # strict: YAML's own types are taken as they are (a `no` read as false is no language)
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Hazard(_Data):
    key: _Key  # stable identifier, reported as Subject.hazard
    subject: _Text  # the English noun CLIPSeg segments: short and visible
    scene: _Text  # the English prompt for a non-English alert (ASCII)
    parent: _Key | None = None  # the more general hazard this one refines
    notice: bool = False  # not a disaster: the scene is always the prompt, in every language
    urgent: bool = False  # wins wherever an alert names it, whatever it names first

    @field_validator("scene")
    @classmethod
    def _ascii(cls, scene: str) -> str:
        if not scene.isascii():
            raise ValueError("a scene is the model's prompt: ASCII only")
        return scene


class Language(_Data):
    """One `<tag>.yaml`: how one language matches, and its terms."""

    style: Literal["spaced", "unspaced"]  # whole words, or terms that carry their own context
    fold: Literal["latin", "lower", "cyrillic", "greek", "arabic"]
    script: _Script = "latin"
    aliases: list[_Tag] = []
    fragments: dict[_Name, _Text] = {}
    terms: dict[_Key, Annotated[list[_Text], Field(min_length=1)]] = Field(min_length=1)
    generic: dict[_Key, Annotated[list[_Text], Field(min_length=1)]] = {}  # a hazard in general
    exclusions: list[_Text] = []

    @model_validator(mode="after")
    def _expressions(self) -> Language:
        problems = [f"fragments.{name}: a fragment may not refer to another"
                    for name, text in self.fragments.items() if _REFERENCE.search(text)]
        problems += _check([(f"terms.{hazard}[{i}]", term) for hazard, group in self.terms.items()
                            for i, term in enumerate(group)], self.fragments)
        problems += _check([(f"generic.{hazard}[{i}]", term)
                            for hazard, group in self.generic.items()
                            for i, term in enumerate(group)], self.fragments)
        problems += _check([(f"exclusions[{i}]", term) for i, term in enumerate(self.exclusions)],
                           self.fragments)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def expand(self, term: str) -> str:
        """The regular expression a term stands for: its fragments filled in."""
        return _expand(term, self.fragments)


def _expand(term: str, fragments: dict[str, str]) -> str:
    return _REFERENCE.sub(lambda ref: fragments[ref[1]], term)


def _check(terms: list[tuple[str, str]], fragments: dict[str, str]) -> list[str]:
    """What is wrong with each (field, term): an unknown fragment, not a regular expression, a
    capturing group."""
    problems = []
    for where, term in terms:
        unknown = sorted({ref for ref in _REFERENCE.findall(term) if ref not in fragments})
        if unknown:
            known = ", ".join(fragments) or "none"
            problems.append(f"{where} {term!r}: no fragment {', '.join(unknown)} in this file "
                            f"(it has: {known})")
            continue
        try:
            groups = re.compile(_expand(term, fragments)).groups
        except re.error as error:
            problems.append(f"{where} {term!r}: not a regular expression ({error})")
            continue
        if groups:
            problems.append(f"{where} {term!r}: use non-capturing groups (?:...)")
    return problems


class Shared(_Data):
    """`shared.yaml`: what is the same in every language."""

    neutral_subject: _Text
    neutral_scene: _Text
    languages: list[_Tag] = Field(min_length=1)  # the order the lexicons are searched in
    cap_preference: list[_Tag] = Field(min_length=1)  # CAP <info> languages, the first first
    hazards: list[Hazard] = Field(min_length=1)
    scripts: dict[_Tag, _Script] = {}  # languages without a lexicon, not in Latin script alone
    aliases: dict[_Tag, _Tag] = {}  # subtags of languages without a lexicon
    same: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")], _Key] = {}
    cap_cp: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+$")], _Key] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Shared:
        problems = []
        keys = [h.key for h in self.hazards]
        problems += [f"hazards: {key} is listed twice" for key in _twice(keys)]
        for i, h in enumerate(self.hazards):
            if h.parent is not None and h.parent not in keys[i + 1:]:
                problems.append(f"hazards[{i}] ({h.key}): parent {h.parent} is no hazard listed "
                                "after it (a finer hazard comes before its parent)")
        for field in ("same", "cap_cp"):
            problems += [f"{field}.{code}: {key} is no hazard"
                         for code, key in getattr(self, field).items() if key not in keys]
        for field in ("languages", "cap_preference"):
            problems += [f"{field}: {tag} is listed twice" for tag in _twice(getattr(self, field))]
        if self.cap_preference[0] != "en":
            problems.append("cap_preference: English comes first (its own words become the "
                            "prompt)")
        if not self.neutral_scene.isascii():
            problems.append("neutral_scene: a scene is the model's prompt: ASCII only")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _twice(items: list[str]) -> list[str]:
    return sorted({item for item in items if items.count(item) > 1})


class Lexicons(_Data):
    """Every file of one lexicon folder, checked against each other."""

    shared: Shared
    languages: dict[str, Language]  # by the tag in the file name, in file-name order

    @model_validator(mode="after")
    def _consistent(self) -> Lexicons:
        problems = []
        tags = set(self.languages)
        if "en" not in tags:
            problems.append("en.yaml: missing (every alert falls back on English)")
        for field in ("languages", "cap_preference"):
            listed = getattr(self.shared, field)
            problems += [f"{SHARED}: {field}: {tag}.yaml is not listed"
                         for tag in sorted(tags - set(listed))]
            problems += [f"{SHARED}: {field}: {tag} has no {tag}.yaml"
                         for tag in listed if tag not in tags]
        hazards = {h.key for h in self.shared.hazards}
        for tag, lang in self.languages.items():
            problems += [f"{tag}.yaml: {field}.{key}: no such hazard in {SHARED}"
                         for field in ("terms", "generic")
                         for key in getattr(lang, field) if key not in hazards]
        problems += [f"{SHARED}: scripts.{tag}: {tag}.yaml names its own script"
                     for tag in self.shared.scripts if tag in tags]
        owners: dict[str, list[str]] = {}
        for alias, target in self.shared.aliases.items():
            owners.setdefault(alias, []).append(SHARED)
            if target in tags:
                problems.append(f"{SHARED}: aliases.{alias}: list it in {target}.yaml's aliases")
        for tag, lang in self.languages.items():
            for alias in lang.aliases:
                owners.setdefault(alias, []).append(f"{tag}.yaml")
        for alias, where in owners.items():
            if alias in tags:
                problems += [f"{w}: aliases: {alias} is a language of its own ({alias}.yaml)"
                             for w in where]
            problems += [f"{w}: aliases: {alias} is already {where[0]}'s" for w in where[1:]]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def ordered(self) -> list[tuple[str, Language]]:
        """The languages in the order they are searched in."""
        return [(tag, self.languages[tag]) for tag in self.shared.languages]


def load_lexicons(folder: Traversable | Path | None = None) -> Lexicons:
    """Read and check every lexicon file of a folder (by default the package's own)."""
    folder = files(__package__) / "lexicons" if folder is None else folder
    try:
        names = sorted(entry.name for entry in folder.iterdir()
                       if entry.name.endswith(".yaml") and entry.is_file())
    except OSError as error:
        raise LexiconError(f"{folder}: cannot list the lexicons ({error})") from None
    if SHARED not in names:
        raise LexiconError(f"{folder}: no {SHARED}")
    shared = _read(folder / SHARED, Shared)
    languages = {}
    for name in names:
        if name == SHARED:
            continue
        tag = name.removesuffix(".yaml")
        if not re.fullmatch("[a-z]{2,3}", tag):
            raise LexiconError(f"{folder / name}: a lexicon is named by its language's primary "
                               "subtag (ko.yaml)")
        languages[tag] = _read(folder / name, Language)
    try:
        return Lexicons(shared=shared, languages=languages)
    except ValidationError as error:
        raise _refusal(f"{folder}/", error) from None


@cache
def lexicons() -> Lexicons:
    """The package's lexicons, read once."""
    return load_lexicons()


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader, except that a key given twice in one mapping is an error: PyYAML
    would keep the last one and silently drop the first hazard's terms."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = loader.construct_scalar(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found {key!r} twice",
                    key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read(path: Traversable | Path, model: type[_Data]) -> _Data:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"{path}: cannot be read ({error})") from None
    except yaml.MarkedYAMLError as error:
        at = error.problem_mark
        where = f"line {at.line + 1}, column {at.column + 1}: " if at is not None else ""
        within = (f" ({error.context} at line {error.context_mark.line + 1})"
                  if error.context and error.context_mark is not None else "")
        raise LexiconError(f"{path}: not valid YAML: {where}{error.problem}{within}") from None
    except yaml.YAMLError as error:
        raise LexiconError(f"{path}: not valid YAML: {error}") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _refusal(str(path), error) from None


def _refusal(where: str, error: ValidationError) -> LexiconError:
    """One line per problem: `<file>: <field>: <what is wrong>`. The checks of more than one
    field (model validators) name their fields themselves; those of the folder, their files."""
    lines = []
    for problem in error.errors(include_url=False):
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                        for part in problem["loc"]).lstrip(".")
        if problem["type"] == "value_error":
            messages = str(problem["ctx"]["error"]).splitlines()
        else:
            messages = [problem["msg"]]
            if not isinstance(problem["input"], (dict, list)):
                messages[0] += f" (got {problem['input']!r})"
        prefix = where if where.endswith("/") else f"{where}: "
        lines += [f"{prefix}{field}: {m}" if field else f"{prefix}{m}" for m in messages]
    return LexiconError("\n".join(lines))


_LEXICONS = lexicons()

NEUTRAL_SUBJECT: str = _LEXICONS.shared.neutral_subject
NEUTRAL_SCENE: str = _LEXICONS.shared.neutral_scene
HAZARDS: tuple[Hazard, ...] = tuple(_LEXICONS.shared.hazards)
# Matching style and fold of each language with a lexicon, in the order they are searched in.
LANGUAGES: dict[str, tuple[str, str]] = {tag: (lang.style, lang.fold)
                                         for tag, lang in _LEXICONS.ordered()}
# The writing systems (space-separated) of languages not written in Latin script alone; any
# other language is Latin. A language hint that contradicts the alert's script is not trusted.
SCRIPTS: dict[str, str] = {**_LEXICONS.shared.scripts,
                           **{tag: lang.script for tag, lang in _LEXICONS.ordered()
                              if lang.script != "latin"}}
# BCP-47 primary subtags that mean a language listed here under another name.
ALIASES: dict[str, str] = {**_LEXICONS.shared.aliases,
                           **{alias: tag for tag, lang in _LEXICONS.ordered()
                              for alias in lang.aliases}}
TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    tag: {key: tuple(map(lang.expand, terms)) for key, terms in lang.terms.items()}
    for tag, lang in _LEXICONS.ordered()}
# Terms that name a hazard only in general: any specific term found with them comes first.
GENERIC: dict[str, dict[str, tuple[str, ...]]] = {
    tag: {key: tuple(map(lang.expand, terms)) for key, terms in lang.generic.items()}
    for tag, lang in _LEXICONS.ordered()}
EXCLUSIONS: dict[str, tuple[str, ...]] = {tag: tuple(map(lang.expand, lang.exclusions))
                                          for tag, lang in _LEXICONS.ordered()}
SAME: dict[str, str] = dict(_LEXICONS.shared.same)
CAP_CP: dict[str, str] = dict(_LEXICONS.shared.cap_cp)
# Which language of a CAP alert with an <info> per language is animated: English first.
CAP_PREFERENCE: tuple[str, ...] = tuple(_LEXICONS.shared.cap_preference)
