import pytest

from pipeline.subject import primary_subject


@pytest.mark.parametrize("text, subject", [
    ("A fire has broken out in the building", "fire"),
    ("Wildfire spreading toward the valley, evacuate now", "wildfire"),
    ("Flash flood warning for the river district", "flood"),
    ("Heavy rain expected overnight", "heavy rain"),
    ("Magnitude 5.4 earthquake felt downtown", "earthquake"),
    ("Tsunami warning after the earthquake: move to high ground", "tsunami"),
    ("Hurricane Maria approaching the coast", "typhoon"),
    ("Tornado sighted near the highway", "tornado"),
    ("Landslide risk on the mountain road", "landslide"),
    ("Blizzard conditions and heavy snow", "snow"),
    ("Extreme heat wave: stay indoors", "heat wave"),
    ("Chemical leak at the industrial park, close windows", "chemical leak"),
    ("Explosion reported at the port", "explosion"),
    ("Thick smoke over the district", "smoke"),
])
def test_english_hazards(text, subject):
    assert primary_subject(text).word == subject


@pytest.mark.parametrize("text, subject", [
    ("[행정안전부] 오늘 15:20 강남구 역삼동 화재 발생, 인근 주민은 안전에 유의하시기 바랍니다", "fire"),
    ("[기상청] 해안가 지진해일 경보, 즉시 높은 곳으로 대피하십시오", "tsunami"),
    ("경북 포항 북쪽 지역 규모 4.5 지진 발생", "earthquake"),
    ("태풍 북상 중, 외출을 자제하세요", "typhoon"),
    ("하천 홍수경보 발령, 저지대 주민 대피", "flood"),
    ("산사태 위험 지역 주민 대피 바랍니다", "landslide"),
    ("폭염경보 발령, 야외활동 자제", "heat wave"),
    ("대설주의보 발효 중", "snow"),
    ("호우경보 발령, 하천 접근 금지", "heavy rain"),
    ("산불 확산 중, 입산 금지", "wildfire"),
])
def test_korean_hazards_and_english_prompt(text, subject):
    found = primary_subject(text)
    assert found.word == subject
    assert found.prompt.isascii(), "the prompt for a Korean alert is English"
    assert subject.split()[0] in found.prompt


def test_english_prompt_keeps_the_alert_text():
    found = primary_subject("A fire has broken out in the building")
    assert found.prompt == "A fire has broken out in the building"
    assert found.matched == "fire"


def test_cap_event_wins_over_text():
    assert primary_subject("Residents near the river must leave", event="Flood Warning").word == "flood"


def test_fallback_when_nothing_matches():
    found = primary_subject("Please stay tuned for further instructions")
    assert found.word == "emergency"
    assert found.matched is None
    assert "stay tuned" in found.prompt


def test_control_characters_rtl_and_emoji_do_not_break_it():
    found = primary_subject("\x00\x1b[31m🔥 fire\u202e near \u200fالمبنى\x7f")
    assert found.word == "fire"
    assert "\x00" not in found.prompt and "\x1b" not in found.prompt
