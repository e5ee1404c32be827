"""The hazard lexicons as data: every file parses and fits the others, a wrong file is refused
with its name and field, and the CAP language preference is the lexicons' own."""

import re
import shutil
from importlib.resources import as_file, files
from pathlib import Path

import pytest

from alertanim.agents.settings import CAP_LANGUAGES
from alertanim.pipeline.lexicon import (CAP_PREFERENCE, HAZARDS, LANGUAGES, SHARED, TERMS,
                                        Language, LexiconError, lexicons, load_lexicons)


@pytest.fixture(scope="module")
def package_folder():
    with as_file(files("alertanim.pipeline") / "lexicons") as folder:
        yield Path(folder)


@pytest.fixture
def copy(package_folder, tmp_path):
    """A writable copy of the package's lexicons, and a way to edit one of its files."""
    folder = tmp_path / "lexicons"
    shutil.copytree(package_folder, folder)

    def edit(name, old, new, count=1):
        path = folder / name
        text = path.read_text(encoding="utf-8")
        assert text.count(old) >= count, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, count), encoding="utf-8")

    return folder, edit


def test_every_language_file_parses(package_folder):
    tags = {p.stem for p in package_folder.glob("*.yaml") if p.name != SHARED}
    assert len(tags) >= 15
    loaded = load_lexicons(package_folder)
    assert set(loaded.languages) == tags == set(LANGUAGES) == set(TERMS)
    for tag, lang in loaded.languages.items():
        assert lang.terms, tag
        assert all(term for group in lang.terms.values() for term in group), tag


def test_the_package_lexicons_are_read_once():
    assert lexicons() is lexicons()
    assert tuple(lexicons().shared.hazards) == HAZARDS


def test_every_hazard_has_an_english_subject_scene_and_terms():
    assert len({h.key for h in HAZARDS}) == len(HAZARDS) >= 40
    for hazard in HAZARDS:
        assert hazard.subject.strip() and hazard.scene.strip(), hazard.key
        assert hazard.scene.isascii() and len(hazard.scene.split()) >= 4, hazard.key
        assert TERMS["en"].get(hazard.key), f"en.yaml has no terms for {hazard.key}"


def test_cap_languages_are_the_lexicons_english_first():
    assert CAP_LANGUAGES == CAP_PREFERENCE
    assert CAP_LANGUAGES[0] == "en"
    assert len(set(CAP_LANGUAGES)) == len(CAP_LANGUAGES)
    assert set(CAP_LANGUAGES) == set(LANGUAGES), "every lexicon is a CAP language and vice versa"


def test_fragments_are_filled_in():
    assert r"(?<![\uac00-\ud7a3])산불" in TERMS["ko"]["wildfire"]
    assert not any("{" in term and re.search(r"\{[A-Za-z_]", term)
                   for terms in TERMS.values() for group in terms.values() for term in group)
    lang = Language.model_validate({
        "style": "unspaced", "fold": "lower", "fragments": {"edge": "(?<!x)"},
        "terms": {"fire": ["{edge}a(?: b){0,2}", r"\{edge}"]}})
    assert [lang.expand(t) for t in lang.terms["fire"]] == ["(?<!x)a(?: b){0,2}", r"\{edge}"]


def test_an_unedited_copy_loads(copy):
    folder, _ = copy
    assert load_lexicons(folder).model_dump() == lexicons().model_dump()


# (file, text to replace, replacement, what the error must say)
BAD = {
    "not a regular expression": (
        "ko.yaml", "    - '화재'\n", "    - '화재'\n    - '(?:불'\n",
        r"ko\.yaml: terms\.fire\[\d+\] '\(\?:불': not a regular expression"),
    "capturing group": (
        "en.yaml", "    - 'smoky'\n", "    - '(smok)y'\n",
        r"en\.yaml: terms\.smoke\[1\] '\(smok\)y': use non-capturing groups"),
    "unknown hazard": (
        "fr.yaml", "  smoke:\n", "  smog_cloud:\n",
        r"fr\.yaml: terms\.smog_cloud: no such hazard in shared\.yaml"),
    "unknown fragment": (
        "ko.yaml", "'{not_inside}산불'", "'{not_insid}산불'",
        r"ko\.yaml: terms\.wildfire\[0\] .*no fragment not_insid in this file "
        r"\(it has: not_inside\)"),
    "unknown field": (
        "de.yaml", "exclusions:\n", "exclusion:\n",
        r"de\.yaml: exclusion: Extra inputs are not permitted"),
    "wrong value": (
        "vi.yaml", "style: spaced", "style: spacey",
        r"vi\.yaml: style: Input should be 'spaced' or 'unspaced' \(got 'spacey'\)"),
    "YAML's 1.1 booleans": (
        "tl.yaml", "aliases: [fil]", "aliases: [no]",
        r"tl\.yaml: aliases\[0\]: Input should be a valid string \(got False\)"),
    "key given twice": (
        "ja.yaml", "exclusions:\n", "  fire:\n    - '火'\nexclusions:\n",
        r"ja\.yaml: not valid YAML: line \d+, column 3: found 'fire' twice \(while reading a "
        r"mapping at line \d+\)"),
    "not YAML": (
        "ru.yaml", "terms:\n", "terms: [\n",
        r"ru\.yaml: not valid YAML: line \d+, column \d+: "),
    "empty file": (
        "hi.yaml", None, "",
        r"hi\.yaml: Input should be a valid dictionary"),
    "parent after its hazard": (
        "shared.yaml", "    parent: fire\n", "    parent: tsunami\n",
        r"shared\.yaml: hazards\[\d+\] \(wildfire\): parent tsunami is no hazard listed after it"),
    "English not first": (
        "shared.yaml", "cap_preference: [en, es,", "cap_preference: [es, en,",
        r"shared\.yaml: cap_preference: English comes first"),
    "SAME code to no hazard": (
        "shared.yaml", "  TOR: tornado\n", "  TOR: twister\n",
        r"shared\.yaml: same\.TOR: twister is no hazard"),
    "language missing from an order": (
        "shared.yaml", "languages: [en, es, fr,", "languages: [en, es,",
        r"shared\.yaml: languages: fr\.yaml is not listed"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_wrong_file_is_refused_naming_the_file_and_field(copy, case):
    folder, edit = copy
    name, old, new, message = BAD[case]
    if old is None:
        (folder / name).write_text(new, encoding="utf-8")
    else:
        edit(name, old, new)
    with pytest.raises(LexiconError, match=message) as refused:
        load_lexicons(folder)
    assert str(folder) in str(refused.value)


def test_a_new_language_needs_its_place_in_both_orders(copy, package_folder):
    folder, edit = copy
    (folder / "sq.yaml").write_text(
        "style: spaced\nfold: latin\nterms:\n  fire:\n    - 'zjarr(?:i|et)?'\n", encoding="utf-8")
    with pytest.raises(LexiconError) as refused:
        load_lexicons(folder)
    assert "shared.yaml: languages: sq.yaml is not listed" in str(refused.value)
    assert "shared.yaml: cap_preference: sq.yaml is not listed" in str(refused.value)
    edit(SHARED, "languages: [en,", "languages: [en, sq,")
    edit(SHARED, "cap_preference: [en,", "cap_preference: [en, sq,")
    loaded = load_lexicons(folder)
    assert [tag for tag, _ in loaded.ordered()][:2] == ["en", "sq"]
    assert loaded.shared.cap_preference[:2] == ["en", "sq"]


def test_a_file_not_named_by_a_language_is_refused(copy):
    folder, _ = copy
    shutil.copy(folder / "ko.yaml", folder / "korean.yaml")
    with pytest.raises(LexiconError, match=r"korean\.yaml: a lexicon is named by its language"):
        load_lexicons(folder)


def test_an_alias_given_twice_is_refused(copy):
    folder, edit = copy
    edit("ja.yaml", "aliases: [jpn]", "aliases: [jpn, kor]")
    with pytest.raises(LexiconError, match=r"ko\.yaml: aliases: kor is already ja\.yaml's"):
        load_lexicons(folder)
