"""Alt text in the alert's own language (pipeline/phrases.py and phrases/*.yaml): every language
the subject stage knows has a file naming every hazard, an alert's alt text starts with its
language's sentence and keeps the alert's words, English reads as it always did, the docs show
what the code says; and the prompt reaches the text encoders within their token limit, the
hazard's scene first."""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
import warnings
from importlib.resources import as_file, files
from pathlib import Path

import pytest

from alertanim.pipeline.lexicon import HAZARDS, LANGUAGES
from alertanim.pipeline.phrases import (MEDIA, PHRASES, PhraseError, load_phrases, phrases,
                                        phrases_for)
from alertanim.pipeline.subject import (MAX_PROMPT, Subject, _clip, _normalise, alt_text,
                                        fit_prompt, primary_subject)

ROOT = Path(__file__).resolve().parents[2]
SCENES = {h.key: h.scene for h in HAZARDS}
CODES = {"EQW": "earthquake", "FRW": "fire", "FLW": "flood"}

# One alert per phrase file: (language tag as a publisher gives it, SAME event code, the alert).
# The code names the hazard, so languages whose lexicon is still to come get theirs too.
ALERTS = {
    "en": ("en", "FRW", "A fire has broken out in the building. Leave now and close the doors "
                        "behind you."),
    "es": ("es", "FLW", "Alerta de inundación: evite las calles inundadas y busque terreno "
                        "elevado."),
    "fr": ("fr", "EQW", "Séisme de magnitude 5,2 ressenti dans la région. Éloignez-vous des "
                        "bâtiments."),
    "de": ("de", "FLW", "Hochwasser am Rhein: Anwohner sollen die Keller räumen und höher "
                        "gelegene Orte aufsuchen."),
    "it": ("it", "EQW", "Forte scossa di terremoto avvertita in tutta la provincia. Restate "
                        "lontani dagli edifici."),
    "pt": ("pt", "FLW", "Alagamentos e enchentes na cidade, evite transitar pelas áreas "
                        "inundadas."),
    "ht": ("ht", "EQW", "Tranblemanntè mayitid 5.8 santi nan Pòtoprens. Rete lwen bilding ki "
                        "domaje yo."),
    "tl": ("tl", "EQW", "Malakas na lindol ang naramdaman sa Maynila. Lumayo sa mga gusali."),
    "vi": ("vi", "FRW", "Cháy lớn tại chung cư, cư dân hãy sơ tán khỏi tòa nhà ngay."),
    "ru": ("ru", "FLW", "Угроза наводнения: жителям прибрежных районов рекомендуется "
                        "эвакуироваться."),
    "ar": ("ar", "FRW", "اندلاع حريق في مبنى سكني، يرجى الابتعاد عن المنطقة"),
    "hi": ("hi", "EQW", "भूकंप के झटके महसूस किए गए, खुले स्थान पर जाएं"),
    "ko": ("ko", "EQW", "[행정안전부] 경북 포항 북쪽 지역 규모 4.5 지진 발생, 여진에 유의하시기 "
                        "바랍니다"),
    "ja": ("ja", "EQW", "緊急地震速報 強い揺れに警戒してください"),
    "zh": ("zh-Hans", "EQW", "【地震预警】四川泸定发生6.8级地震，请注意避险"),
    "zh-Hant": ("zh-Hant", "EQW", "【地震速報】花蓮發生規模6.5地震，請注意自身安全"),
    "bg": ("bg", "EQW", "Силно земетресение е усетено в София. Стойте далеч от сгради."),
    "hr": ("hr", "EQW", "Potres magnitude 5,4 pogodio je Zagreb. Udaljite se od zgrada."),
    "cs": ("cs", "FLW", "Povodeň na Vltavě: obyvatelé níže položených oblastí se mají "
                        "přesunout výš."),
    "da": ("da", "FRW", "Brand i en lagerbygning i Odense. Hold vinduer og døre lukkede."),
    "nl": ("nl", "FRW", "Grote brand in een loods in Rotterdam. Houd ramen en deuren gesloten."),
    "et": ("et", "FRW", "Tallinnas puhkes suur tulekahju. Hoidke aknad ja uksed suletuna."),
    "fi": ("fi", "FLW", "Tulva uhkaa jokivarren asuntoja. Siirtykää korkeammalle."),
    "el": ("el", "EQW", "Σεισμός 5,3 Ρίχτερ αισθητός στην Αθήνα. Απομακρυνθείτε από τα "
                        "κτίρια."),
    "hu": ("hu", "FLW", "Árvíz fenyeget a Duna mentén. A lakók húzódjanak magasabb "
                        "területekre."),
    "ga": ("ga", "FLW", "Tuile i lár an bhaile. Seachain na bóithre atá faoi uisce."),
    "lv": ("lv", "FRW", "Rīgā izcēlies liels ugunsgrēks. Turiet logus un durvis aizvērtus."),
    "lt": ("lt", "FRW", "Vilniuje kilo didelis gaisras. Laikykite langus ir duris uždarytus."),
    "mt": ("mt", "FRW", "Nar kbir f'fabbrika fil-Marsa. Żommu t-twieqi u l-bibien magħluqa."),
    "pl": ("pl", "FLW", "Powódź w dolinie Odry. Mieszkańcy terenów nisko położonych powinni "
                        "się ewakuować."),
    "ro": ("ro", "EQW", "Cutremur cu magnitudinea 5,1 resimțit în București. Stați departe de "
                        "clădiri."),
    "sk": ("sk", "EQW", "Zemetrasenie s magnitúdou 4,9 zasiahlo východné Slovensko. Zostaňte "
                        "mimo budov."),
    "sl": ("sl", "EQW", "Potres z magnitudo 4,6 je stresel Ljubljano. Umaknite se od stavb."),
    "sv": ("sv", "FRW", "Brand i ett lager i Göteborg. Håll fönster och dörrar stängda."),
    "tr": ("tr", "EQW", "İzmir'de 5,8 büyüklüğünde deprem meydana geldi. Binalardan uzak "
                        "durun."),
    "uk": ("uk", "FLW", "Загроза повені: мешканцям прибережних районів рекомендовано "
                        "евакуюватися."),
    "id": ("id", "EQW", "Gempa bumi berkekuatan 5,6 mengguncang Cianjur. Jauhi bangunan."),
    "th": ("th", "EQW", "เกิดแผ่นดินไหวขนาด 5.2 ที่เชียงราย โปรดอยู่ห่างจากอาคาร"),
}


def _subject(tag: str, code: str, text: str) -> Subject:
    return primary_subject(text, language=tag, event_codes=[("SAME", code)])


def _words(text: str) -> str:
    """The alert's words as the alt text carries them (NFKC, one space between words)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


# --- every language ------------------------------------------------------------------------------

def test_every_language_with_a_lexicon_has_phrases_naming_every_hazard():
    keys = {h.key for h in HAZARDS}
    missing = [lang for lang in LANGUAGES if lang not in PHRASES]
    assert not missing, f"no pipeline/phrases/<tag>.yaml for the lexicons of {missing}"
    for tag, lang in PHRASES.items():
        assert set(lang.hazards) == keys, tag
        assert all(name.strip() for name in lang.hazards.values()), tag
        assert set(lang.media) == set(MEDIA), tag
    assert set(ALERTS) == set(PHRASES), "one alert per phrase file, here and in the docs"


@pytest.mark.parametrize("lang", sorted(ALERTS))
def test_the_alt_text_is_in_the_alerts_language(lang):
    tag, code, text = ALERTS[lang]
    subject = _subject(tag, code, text)
    hazard = CODES[code]
    assert subject.hazard == hazard and subject.language == lang.split("-")[0]
    own = PHRASES[lang]
    alt = alt_text(text, subject)
    assert alt.startswith(own.shows.format(hazard=own.hazards[hazard]))
    assert own.hazards[hazard] in alt  # the hazard, named in the alert's language
    assert alt.endswith(_words(text))  # the alert's own words, after the sentence
    assert alt == own.alert.format(shows=own.describe(hazard), text=_words(text))
    if lang != "en":
        assert not alt.startswith("Animated illustration")
        assert own.hazards[hazard] != PHRASES["en"].hazards[hazard]


def test_a_korean_alert_reads_korean_first():
    text = "[행정안전부] 오늘 15:20 강남구 역삼동 화재 발생, 인근 주민은 안전에 유의하시기 바랍니다"
    assert alt_text(text, primary_subject(text)) == (
        f"화재를 나타낸 애니메이션입니다. 경보 내용: {text}")
    text = "[행정안전부] 경북 포항 북쪽 지역 규모 4.5 지진 발생"
    assert alt_text(text, primary_subject(text)).startswith("지진을 나타낸 애니메이션입니다. 경보 내용: ")


def _as_before(text: str, subject: Subject, limit: int = 1_000) -> str:
    """The alt text as it was before it spoke the alert's language (always English)."""
    shows = (f"Animated illustration of {subject.word}" if subject.hazard else
             "Animated illustration")
    words = _clip(_normalise(text), max(0, limit - len(shows) - 14))
    return f"{shows}. The alert: {words}" if words else shows


@pytest.mark.parametrize("text", [
    "A fire has broken out in the building", "", "Please stay tuned for further instructions",
    "Flood warning: stay away from the river banks and low water crossings " * 30])
def test_english_alt_text_is_what_it_always_was(text):
    for h in (*HAZARDS, None):
        subject = (Subject(h.subject, h.scene, h.key, h.key, "en", "text") if h else
                   primary_subject("Please stay tuned"))
        for limit in (1_000, 120):
            assert alt_text(text, subject, limit) == _as_before(text, subject, limit)
    assert PHRASES["en"].hazards == {h.key: h.subject for h in HAZARDS}


def test_no_hazard_gets_the_languages_neutral_sentence():
    text = "추가 안내가 있을 때까지 기다려 주십시오"
    subject = primary_subject(text)
    assert subject.hazard is None and subject.language == "ko"
    assert alt_text(text, subject) == f"긴급 경보를 알리는 애니메이션입니다. 경보 내용: {text}"
    assert alt_text("", subject) == "긴급 경보를 알리는 애니메이션입니다"


def test_a_language_without_phrases_is_described_in_english():
    subject = Subject("fire", SCENES["fire"], "x", "fire", "sw", "event_code")  # Swahili
    assert alt_text("Moto mkubwa umezuka", subject) == (
        "Animated illustration of fire. The alert: Moto mkubwa umezuka")
    assert phrases_for("und") is PHRASES["en"] and phrases_for(None) is PHRASES["en"]


def test_chinese_is_described_in_the_script_the_alert_is_written_in():
    assert phrases_for("zh", "台风“山竹”即将登陆，请市民做好防范") is PHRASES["zh"]
    assert phrases_for("zh", "颱風警報：請民眾做好防颱準備，避免外出") is PHRASES["zh-Hant"]
    assert phrases_for("zh", "地震") is PHRASES["zh"]  # neither script's own: simplified
    text = "豪雨特報：今晚起有局部大豪雨，請注意安全"
    assert alt_text(text, primary_subject(text)).startswith("描繪豪雨的動畫。警報內容：")
    text = "暴雨红色预警：未来3小时将有特大暴雨，请减少外出"
    assert alt_text(text, primary_subject(text)).startswith("描绘暴雨的动画。预警内容：")


def test_korean_names_take_the_object_particle_their_last_syllable_needs():
    for key, name in [*PHRASES["ko"].hazards.items(), ("none", PHRASES["ko"].no_hazard)]:
        last, particle = name[-2], name[-1]
        assert "\uac00" <= last <= "\ud7a3", (key, name)
        closed = (ord(last) - 0xAC00) % 28 != 0  # a final consonant
        assert particle == ("을" if closed else "를"), (key, name)


def test_a_long_alert_is_cut_at_a_word_within_the_limit():
    text = "[기상청] 호우경보 발효 중입니다. " + "하천 주변 산책로와 저지대 접근을 삼가시기 바랍니다. " * 40
    subject = primary_subject(text)
    alt = alt_text(text, subject, limit=300)
    assert len(alt) <= 300 and alt.startswith("호우를 나타낸 애니메이션입니다. 경보 내용: [기상청]")
    words = alt.removeprefix("호우를 나타낸 애니메이션입니다. 경보 내용: ")
    assert _words(text).startswith(words) and _words(text)[len(words)] == " "


@pytest.mark.parametrize("lang", sorted(PHRASES))
def test_every_resource_description_names_the_hazard_in_its_language(lang):
    own = PHRASES[lang]
    for media_type in MEDIA:
        desc = own.resource(media_type, "earthquake")
        assert own.hazards["earthquake"] in desc and "{" not in desc
        assert own.no_hazard in own.resource(media_type, None)
    assert own.resource("image/avif", "fire") == own.resource("other", "fire")
    if lang == "en":  # as the CAP Update always said
        assert own.resource("image/gif", "earthquake") == "Animated GIF of the alert (earthquake)"
        assert own.resource("video/mp4", None) == "Video of the alert (emergency)"
        assert own.resource("image/avif", "fire") == "animation of the alert (fire)"


# --- the docs --------------------------------------------------------------------------------

def _docs_rows() -> list[list[str]]:
    page = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    section = page.split("\n## Alt text\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_docs_show_one_alerts_alt_text_per_language_as_the_code_says_it():
    rows = _docs_rows()
    shown = set()
    for tag, code, alert, alt in rows:
        tag, code = tag.strip("`"), code.strip("`")
        assert alt == alt_text(alert, _subject(tag, code, alert)), tag
        shown.add(next(lang for lang, p in PHRASES.items() if p is phrases_for(
            _subject(tag, code, alert).language, _words(alert))))
    assert shown == set(PHRASES), f"no docs line for {sorted(set(PHRASES) - shown)}"
    assert len(rows) == len(PHRASES)


# --- the loader ------------------------------------------------------------------------------

@pytest.fixture
def copy(tmp_path):
    """A writable copy of the package's phrases, and a way to edit one of its files."""
    folder = tmp_path / "phrases"
    with as_file(files("alertanim.pipeline") / "phrases") as package:
        shutil.copytree(package, folder)

    def edit(name, old, new):
        path = folder / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return folder, edit


def test_the_package_phrases_are_read_once_and_an_unedited_copy_loads(copy):
    folder, _ = copy
    assert phrases() is phrases() is PHRASES
    assert {t: p.model_dump() for t, p in load_phrases(folder).items()} == {
        t: p.model_dump() for t, p in PHRASES.items()}


@pytest.mark.parametrize("name, old, new, message", [
    ("ko.yaml", "  earthquake: '지진을'\n", "", r"ko\.yaml: hazards\.earthquake: missing"),
    ("es.yaml", "  fire: 'un incendio'\n", "  fire: 'un incendio'\n  lava: 'lava'\n",
     r"es\.yaml: hazards\.lava: no such hazard"),
    ("fr.yaml", "shows: 'Animation représentant {hazard}'", "shows: 'Animation représentant'",
     r"fr\.yaml: shows: .*needs \{hazard\}"),
    ("de.yaml", "alert: '{shows}. Text der Warnung: {text}'",
     "alert: '{text} {shows}'", r"de\.yaml: alert: .*\{text\}, the alert's own words, last"),
    ("it.yaml", "  video/mp4: 'Video che mostra {hazard}'\n", "",
     r"it\.yaml: media: video/mp4: missing"),
    ("pt.yaml", "  other: ", "  image/png: 'PNG {hazard}'\n  other: ",
     r"pt\.yaml: media: image/png: not a media type"),
    ("ru.yaml", "neutral: ", "colour: 'red'\nneutral: ", r"ru\.yaml: colour: Extra inputs"),
    ("ja.yaml", "  fire: '火災'\n", "  fire: '火災'\n  fire: '火事'\n", r"ja\.yaml: not valid YAML.*twice"),
    ("vi.yaml", "  smoke: 'khói dày đặc'", "  smoke: 'khói {dày}'",
     r"vi\.yaml: hazards: smoke: .*literal text only"),
    ("zh-Hant.yaml", "marks: ", "marks: '们'\nold_marks: ", r"zh-Hant\.yaml: old_marks"),
])
def test_a_wrong_file_is_refused_naming_file_and_field(copy, name, old, new, message):
    folder, edit = copy
    edit(name, old, new)
    with pytest.raises(PhraseError, match=message):
        load_phrases(folder)


def test_a_second_script_needs_its_own_marks_and_a_file_for_its_language(copy):
    folder, edit = copy
    edit("zh-Hant.yaml", "marks: '們", "marks: '们們")
    with pytest.raises(PhraseError, match=r"zh-Hant\.yaml: marks: 们 also in zh\.yaml's marks"):
        load_phrases(folder)
    (folder / "zh-Hant.yaml").rename(folder / "sr-Latn.yaml")
    with pytest.raises(PhraseError, match=r"sr-Latn\.yaml: no sr\.yaml beside it"):
        load_phrases(folder)
    (folder / "sr-Latn.yaml").unlink()
    (folder / "en.yaml").rename(folder / "english.yaml")
    with pytest.raises(PhraseError, match=r"english\.yaml: a phrase file is named by"):
        load_phrases(folder)


# --- the prompt the text encoders read -------------------------------------------------------

def _tokens(tokenizer, text: str) -> int:
    """How many tokens the text encoder reads for `text`, the special ones included."""
    return len(tokenizer.encode(text, add_special_tokens=True, verbose=False))


def _long_alert() -> str:
    text = ("Residents of the Riverside and Oak Park neighbourhoods must leave their homes now. "
            "Take Route 9 north to the county fairgrounds shelter, bring medicines, documents and "
            "pets, and check on neighbours who may need help. Do not drive around barricades; "
            "roads along the levee are closed. Officials will say when it is safe to return. "
            "Call 211 for a ride or for more information about the shelter and the bus times.")
    assert len(text) >= MAX_PROMPT
    return text[:MAX_PROMPT]


def test_a_long_alert_reaches_every_text_encoder_within_its_limit_scene_first(tiny, caplog,
                                                                             monkeypatch):
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image
    from transformers.utils import logging as transformers_logging

    from alertanim.pipeline.generate import generate_batch
    from alertanim.pipeline.sample import masked_variants_batch
    from alertanim.pipeline.score import clip_scores

    text, scene = _long_alert(), SCENES["flood"]
    subject = primary_subject(text, event="Flood Warning")
    # the subject stage's prompt: the alert's words, the scene last (what CLIP would cut)
    assert subject.prompt.endswith(f", {scene}") and _tokens(tiny.text2img.tokenizer,
                                                             subject.prompt) > 77
    received = []  # (tokenizer, text) for every text a tokenizer is given
    tokenizers = {id(tiny.text2img.tokenizer): tiny.text2img.tokenizer,
                  id(tiny.clip_processor.tokenizer): tiny.clip_processor.tokenizer}
    for cls in {type(t) for t in tokenizers.values()}:
        original = cls.__call__

        def spy(self, *args, _original=original, **kwargs):
            given = kwargs.get("text", args[0] if args else None)
            for one in [given] if isinstance(given, str) else given or ():
                received.append((self, one))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__call__", spy)

    transformers_logging.enable_propagation()  # both libraries log to their own handlers
    diffusers_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            [images] = generate_batch(tiny.text2img, [subject.prompt], [5], n=2, steps=1,
                                      size=tiny.image_size)
            clip_scores(tiny.clip, tiny.clip_processor, images + [Image.new("RGB", (64, 64))],
                        subject.prompt)
            masked_variants_batch(tiny.inpaint, images[:1], [Image.new("L", images[0].size, 255)],
                                  [subject.prompt], [5], k=2, steps=2)
    finally:
        transformers_logging.disable_propagation()
        diffusers_logging.disable_propagation()

    prompts = [(tok, t) for tok, t in received if t]  # "" is the unconditional prompt
    assert {id(tok) for tok, _ in prompts} == set(tokenizers), "both encoders read the prompt"
    own = _words(text)
    for tok, got in prompts:
        limit = tok.model_max_length  # the model's own limit (77 for CLIP and the tiny models)
        assert _tokens(tok, got) <= limit, got
        assert got.startswith(f"{scene}, "), got  # the whole scene, first
        words = got.removeprefix(f"{scene}, ")
        assert own.startswith(words) and own[len(words)] in " ,;:-", got  # cut at a word
        longer = own[:own.index(" ", len(words) + 1)]  # and the next word
        assert _tokens(tok, f"{scene}, {longer}") > limit  # as many words as fit
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in logged if re.search("truncat|sequence length|tokens", m)], logged
    assert not [w for w in caught if re.search("truncat|sequence length|token",
                                               str(w.message), re.I)], caught


def test_fit_prompt_keeps_short_prompts_and_cuts_only_at_words(tiny):
    tok = tiny.text2img.tokenizer
    budget = tok.model_max_length
    assert fit_prompt("A fire has broken out in the building", tok) == (
        "A fire has broken out in the building")
    assert fit_prompt(SCENES["earthquake"], tok) == SCENES["earthquake"]  # a scene alone
    short = primary_subject("Residents near the river must leave", event="Flood Warning")
    assert fit_prompt(short.prompt, tok) == f"{SCENES['flood']}, Residents near the river must leave"
    named = primary_subject("Flood warning " + "stay away from the river banks " * 20)
    fitted = fit_prompt(named.prompt, tok)  # names its hazard: no scene, its own words cut
    assert named.prompt.startswith(fitted) and named.prompt[len(fitted)] == " "
    assert _tokens(tok, fitted) <= budget
    long_scene = SCENES["radiological"]  # longer than the tiny tokenizer's 75 byte tokens
    assert _tokens(tok, long_scene) > budget
    fitted = fit_prompt(long_scene, tok)
    assert long_scene.startswith(fitted) and long_scene[len(fitted)] == " "
    assert _tokens(tok, fitted) <= budget
    assert fit_prompt("x" * 300, tok) == "x" * (budget - 2)  # one word: cut where it must be
