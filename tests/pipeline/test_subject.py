"""Stage 3a: hazard, CLIPSeg word and English prompt for alerts in many languages."""

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertanim.pipeline.lexicon import CAP_CP, HAZARDS, NEUTRAL_SCENE, SAME, TERMS
from alertanim.pipeline.subject import MAX_PROMPT, Subject, primary_subject

SCENES = {h.key: h.scene for h in HAZARDS}
NOTICES = [h.key for h in HAZARDS if h.notice]
DISASTER_WORDS = ("fire", "flame", "flood", "smoke", "storm", "tornado", "hurricane", "explo",
                  "debris", "destr", "collaps", "disaster", "wave", "burn", "lightning",
                  "earthquake", "tsunami", "evacuat", "blood", "injur", "wreck")

# (alert, language hint, expected hazard): realistic alerts, 5-20 words, detected without a hint
# unless one is given.
ALERTS = {
    "en": [
        ("A fire has broken out in the building", None, "fire"),
        ("Tornado Warning in this area until 7:45 PM CDT. Take shelter now in a basement or "
         "interior room.", None, "tornado"),
        ("TORNADO EMERGENCY for Moore. A large and extremely dangerous tornado is on the ground. "
         "Take cover now!", None, "tornado_emergency"),
        ("Flash Flood Warning this area til 3:00 AM CDT. Avoid flooded areas. Check local media.",
         None, "flash_flood"),
        ("FLASH FLOOD EMERGENCY for Houston. Move to higher ground now. Do not drive through "
         "flooded roads.", None, "flash_flood_emergency"),
        ("Severe Thunderstorm Warning until 6 PM: 70 mph winds and golf ball size hail possible.",
         None, "severe_thunderstorm"),
        ("Snow Squall Warning until 2:15 PM EST. Sudden whiteout conditions on I-90. Slow down.",
         None, "snow_squall"),
        ("Dust Storm Warning in effect until 4 PM MST. Pull aside, stay alive.", None,
         "dust_storm"),
        ("Hurricane Warning: Hurricane Ian is approaching the coast. Complete preparations now.",
         None, "hurricane"),
        ("Storm Surge Warning: life-threatening inundation expected. Follow evacuation orders.",
         None, "storm_surge"),
        ("Extreme Wind Warning: treat these imminent extreme winds as if a tornado was "
         "approaching.", None, "extreme_wind"),
        ("Tsunami Warning: a tsunami may hit the coast. Move to high ground or inland now.",
         None, "tsunami"),
        ("Magnitude 6.4 earthquake felt in Ridgecrest. Expect aftershocks. Drop, cover and "
         "hold on.", None, "earthquake"),
        ("Avalanche Warning for the backcountry: very dangerous avalanche conditions today.",
         None, "avalanche"),
        ("Hazardous materials spill at the rail yard. Shelter in place and close windows.",
         None, "hazmat"),
        ("Heavy rain expected overnight with 3 to 5 inches possible.", None, "heavy_rain"),
        ("Typhoon Mawar will pass near Guam tonight. Stay indoors.", None, "typhoon"),
        ("Landslide risk on the mountain road after heavy rain. Avoid Route 9.", None,
         "landslide"),
        ("Excessive Heat Warning: temperatures up to 115 F. Stay hydrated and indoors.", None,
         "heat_wave"),
        ("Heavy snow expected: 12 to 18 inches by morning. Avoid travel.", None, "heavy_snow"),
        ("Wildfire spreading toward the valley, evacuate now", None, "wildfire"),
        ("Chemical leak at the industrial park, close windows", None, "chemical_leak"),
        ("Explosion reported at the port", None, "explosion"),
        ("Thick smoke over the district", None, "smoke"),
        ("Blizzard conditions and heavy snow", None, "blizzard"),
        ("This is a test of the Emergency Alert System. This is only a test.", None, "test"),
        ("Boil Water Notice for residents of Oak Street: boil tap water before drinking.", None,
         "boil_water"),
        ("911 service is down in Dallas County. For emergencies call 214-555-0100.", None,
         "telephone_outage"),
        ("Missing child: 8-year-old boy last seen near Main Street wearing a red jacket.", None,
         "missing_person"),
    ],
    "es": [
        ("Alerta de tornado en esta área hasta las 7:45 PM. Busque refugio ahora en un sótano.",
         None, "tornado"),
        ("Aviso de inundación repentina en esta zona hasta las 3:00 AM. Evite las áreas "
         "inundadas.", "es-US", "flash_flood"),
        ("Incendio forestal cerca de la carretera 9. Evacúe inmediatamente.", None, "wildfire"),
        ("Sismo de magnitud 6.1 sentido en la Ciudad de México. Manténgase alejado de edificios "
         "dañados.", None, "earthquake"),
        ("Hierva el agua antes de beberla hasta nuevo aviso.", None, "boil_water"),
        ("Alerta de huracán: prepárese para vientos fuertes y marejada ciclónica.", "es",
         "hurricane"),
        ("Esto es una prueba del sistema de alertas de emergencia. No se requiere ninguna "
         "acción.", None, "test"),
    ],
    "fr": [
        ("Alerte tsunami : évacuez immédiatement les zones côtières et rejoignez les hauteurs.",
         None, "tsunami"),
        ("Vigilance rouge inondation : ne prenez pas votre véhicule, restez chez vous.", None,
         "flood"),
        ("Un incendie s'est déclaré dans le bâtiment, fermez vos fenêtres et restez à "
         "l'intérieur.", None, "fire"),
        ("Séisme de magnitude 5,2 ressenti dans la région. Éloignez-vous des bâtiments.", None,
         "earthquake"),
        ("Avis de tempête : vents violents attendus cette nuit sur le littoral.", "fr-CA",
         "high_wind"),
        ("Feux de forêt près de la route 9, évacuez maintenant.", None, "wildfire"),
        ("Canicule : buvez de l’eau régulièrement et évitez de sortir aux heures chaudes.", None,
         "heat_wave"),
    ],
    "de": [
        ("Unwetterwarnung: schwere Gewitter mit Hagel und Sturmböen bis 22 Uhr.", None,
         "severe_thunderstorm"),
        ("Hochwasser am Rhein: Anwohner sollen die Keller räumen und höher gelegene Orte "
         "aufsuchen.", None, "flood"),
        ("Großbrand in einer Lagerhalle, Fenster und Türen geschlossen halten.", None, "fire"),
        ("Warnung vor extremer Hitze. Trinken Sie ausreichend Wasser.", None, "heat_wave"),
        ("Probealarm: Dies ist ein Test des Warnsystems, es besteht keine Gefahr.", None, "test"),
        ("Waldbrand in der Nähe der Autobahn, verlassen Sie sofort das Gebiet.", "de-DE",
         "wildfire"),
        ("Erdbeben der Stärke 4,8 in Baden-Württemberg, bleiben Sie ruhig.", None,
         "earthquake"),
    ],
    "ht": [
        ("Avètisman tsunami: kite zòn bò lanmè a touswit epi monte sou tè ki wo.", None,
         "tsunami"),
        ("Siklòn ap pwoche, rete lakay ou epi prepare yon twous ijans.", None, "hurricane"),
        ("Inondasyon nan zòn nan, pa travèse dlo k ap koule.", None, "flood"),
        ("Tranblemanntè mayitid 5.8 santi nan Pòtoprens. Rete lwen bilding ki domaje yo.", None,
         "earthquake"),
        ("Dife nan katye a, kite kay la kounye a.", "ht", "fire"),
        ("Bouyi dlo a anvan ou bwè l pou omwen yon minit.", None, "boil_water"),
        ("Sa a se yon tès sistèm alèt la. Ou pa bezwen fè anyen.", None, "test"),
    ],
    "it": [
        ("Allerta rossa per alluvione: evitare i sottopassi e non uscire di casa.", None,
         "flood"),
        ("Incendio boschivo in corso vicino alla statale, evacuare immediatamente.", None,
         "wildfire"),
        ("Forte scossa di terremoto avvertita in tutta la provincia. Restate lontani dagli "
         "edifici.", None, "earthquake"),
        ("Allerta meteo: temporali forti con grandine previsti nel pomeriggio.", None,
         "severe_thunderstorm"),
        ("Ondata di calore: bevete molta acqua ed evitate di uscire nelle ore più calde.", None,
         "heat_wave"),
    ],
    "pt": [
        ("Alerta de deslizamento de terra: moradores de áreas de risco devem sair de casa.",
         None, "landslide"),
        ("Aviso de tempestade severa com ventos fortes e granizo até as 18h.", None,
         "severe_thunderstorm"),
        ("Incêndio florestal próximo à rodovia. Evacue imediatamente.", "pt-BR", "wildfire"),
        ("Alagamentos e enchentes na cidade, evite transitar pelas áreas inundadas.", None,
         "flood"),
        ("Onda de calor: beba bastante água e evite exposição ao sol.", None, "heat_wave"),
    ],
    "tl": [
        ("Babala sa bagyo: lumikas na sa mas mataas na lugar ang mga nakatira sa tabing-dagat.",
         None, "typhoon"),
        ("May sunog sa gusali, lumabas agad at huwag gumamit ng elevator.", None, "fire"),
        ("Malakas na lindol ang naramdaman sa Maynila. Lumayo sa mga gusali.", None,
         "earthquake"),
        ("Babala ng baha: iwasan ang pagtawid sa mga ilog at binahang kalsada.", "fil",
         "flood"),
        ("May panganib ng pagguho ng lupa sa mga bundok, mag-ingat.", None, "landslide"),
    ],
    "vi": [
        ("Cảnh báo lũ quét tại các huyện miền núi, người dân cần sơ tán ngay.", None,
         "flash_flood"),
        ("Bão số 3 đang tiến vào đất liền, người dân không ra khơi.", None, "typhoon"),
        ("Cháy lớn tại chung cư, cư dân hãy sơ tán khỏi tòa nhà ngay.", None, "fire"),
        ("Động đất mạnh 5,0 độ richter tại Kon Tum.", None, "earthquake"),
        ("Nguy cơ sạt lở đất tại các tỉnh miền núi phía Bắc.", "vi-VN", "landslide"),
    ],
    "ru": [
        ("Внимание! Штормовое предупреждение: сильный ветер и гроза.", None, "high_wind"),
        ("В районе произошло землетрясение магнитудой 5,6. Сохраняйте спокойствие.", None,
         "earthquake"),
        ("Угроза наводнения: жителям прибрежных районов рекомендуется эвакуироваться.", None,
         "flood"),
        ("Лесной пожар в районе посёлка, жителей просят покинуть дома.", None, "wildfire"),
        ("Аномальная жара до +40. Избегайте пребывания на солнце.", "ru-RU", "heat_wave"),
    ],
    "ar": [
        ("تحذير من عاصفة رملية، يرجى البقاء في المنازل وإغلاق النوافذ", None, "dust_storm"),
        ("اندلاع حريق في مبنى سكني، يرجى الابتعاد عن المنطقة", None, "fire"),
        ("زلزال بقوة 5.8 درجات يضرب المنطقة، ابتعدوا عن المباني", None, "earthquake"),
        ("تحذير من فيضانات وسيول جارفة في الأودية، تجنبوا عبورها", None, "flash_flood"),
        ("أمطارٌ غزيرةٌ متوقعة اليوم، يرجى توخي الحذر", "ar-SA", "heavy_rain"),
    ],
    "hi": [
        ("भारी बारिश की चेतावनी, घर में ही रहें", None, "heavy_rain"),
        ("इमारत में आग लग गई है, तुरंत बाहर निकलें", None, "fire"),
        ("भूकंप के झटके महसूस किए गए, खुले स्थान पर जाएं", None, "earthquake"),
        ("चक्रवात तट की ओर बढ़ रहा है, निचले इलाकों को खाली करें", None, "cyclone"),
        ("नदी में बाढ़ का खतरा, लोग ऊंचे स्थानों पर जाएं", "hi-IN", "flood"),
    ],
    "ko": [
        ("[행정안전부] 오늘 15:20 강남구 역삼동 화재 발생, 인근 주민은 안전에 유의하시기 바랍니다",
         None, "fire"),
        ("[기상청] 해안가 지진해일 경보, 즉시 높은 곳으로 대피하십시오", None, "tsunami"),
        ("경북 포항 북쪽 지역 규모 4.5 지진 발생", None, "earthquake"),
        ("태풍 북상 중, 외출을 자제하세요", None, "typhoon"),
        ("하천 홍수경보 발령, 저지대 주민 대피", None, "flood"),
        ("산사태 위험 지역 주민 대피 바랍니다", None, "landslide"),
        ("폭염경보 발령, 야외활동 자제", None, "heat_wave"),
        ("대설주의보 발효 중", None, "heavy_snow"),
        ("호우경보 발령, 하천 접근 금지", None, "heavy_rain"),
        ("산불 확산 중, 입산 금지", None, "wildfire"),
        ("[행정안전부] 공장 화재로 연기가 많이 발생하고 있으니 인근 주민은 창문을 닫아 주시기 "
         "바랍니다", "ko-KR", "fire"),
        ("공장 주변에 연기가 자욱하니 창문을 닫고 외출을 자제하세요", None, "smoke"),
        ("[환경부] 미세먼지 경보 발령, 외출을 자제하고 마스크를 착용하세요", None, "fine_dust"),
        ("[○○경찰서] 배회중인 김○○씨(남,80세)를 찾습니다 -165cm, 검정바지", None,
         "missing_person"),
        ("[행정안전부] 이 메시지는 시험 발송입니다", None, "test"),
    ],
    "ja": [
        ("緊急地震速報 強い揺れに警戒してください", None, "earthquake"),
        ("大津波警報 ただちに高台へ避難してください", None, "tsunami"),
        ("大雨特別警報が発表されました。命を守る行動をとってください", None, "heavy_rain"),
        ("近くで火災が発生しました。煙を吸わないよう注意してください", None, "fire"),
        ("土砂災害警戒情報が発表されました。早めに避難してください", "ja-JP", "landslide"),
    ],
    "zh": [
        ("【地震预警】四川泸定发生6.8级地震，请注意避险", None, "earthquake"),
        ("台风“山竹”即将登陆，请市民做好防范", None, "typhoon"),
        ("暴雨红色预警：未来3小时将有特大暴雨，请减少外出", None, "heavy_rain"),
        ("某化工厂发生火灾，请附近居民关闭门窗", "zh-CN", "fire"),
        ("高温红色预警：最高气温将达40℃以上，请注意防暑", None, "heat_wave"),
        ("【地震速報】花蓮發生規模6.5地震，請注意自身安全", "zh-Hant", "earthquake"),
        ("颱風警報：請民眾做好防颱準備，避免外出", "zh-TW", "typhoon"),
        ("豪雨特報：今晚起有局部大豪雨，請注意安全", None, "heavy_rain"),
    ],
}

# False friends: each holds a hazard word's spelling, or a word that contains one, and names no
# hazard. (alert, language hint)
FALSE_FRIENDS = {
    "en": ["A man with a firearm was seen near the school", "The mayor won by a landslide",
           "Fireworks display tonight at the park", "Test your smoke alarms this weekend",
           "The fire department holds an open house on Saturday",
           "Tonight the Miami Hurricanes play at home", "Please do not pour oil into storm drains"],
    "es": ["El centro de salud abre de 8 a 20 horas",
           "Un hombre con un arma de fuego fue visto cerca de la escuela",
           "Espectáculo de fuegos artificiales esta noche en la plaza",
           "Se venden helados en la plaza mayor"],
    "fr": ["Un homme muni d'une arme à feu a été vu près de l'école",
           "Feux d'artifice du 14 juillet au parc municipal", "Défense de fumer dans la gare",
           "Ne mangez pas de viande crue pendant la grossesse",
           "Tournez à gauche au feu rouge après la mairie"],
    "de": ["Willkommen in Brandenburg an der Havel",
           "Sonnenbrand vermeiden: Sonnencreme auftragen",
           "Weinbrand und Sekt sind heute im Angebot", "Das Feuerwerk beginnt um 22 Uhr am See",
           "Großer Ansturm auf die Geschäfte vor Weihnachten",
           "Hagelzucker für die Brötchen kaufen"],
    "ht": ["Tanpri pa fimen isit la nan lopital la", "Mwen tranble ak frèt chak maten",
           "Rezilta sa yo diferan de sa nou te panse", "Bwè anpil dlo lè li fè cho"],
    "it": ["Vietato fumare in stazione e sui binari",
           "Spettacolo di fuochi d'artificio stasera sul lungomare",
           "La sala è piena, si prega di attendere", "Un uomo con un'arma da fuoco è stato visto",
           "La pianura alluvionale del Po è molto fertile"],
    "pt": ["Homem com arma de fogo foi visto perto da escola",
           "Show de fogos de artifício hoje à noite na praia", "Proibido fumar nesta área",
           "Ele acordou de ressaca depois da festa", "Lesão no lobo temporal foi tratada"],
    "tl": ["Malinis ang bahay namin ngayong umaga", "Bahala na kayo sa plano bukas",
           "Bahagi ito ng ating proyekto sa paaralan", "May pausok laban sa lamok bukas ng umaga"],
    "vi": ["Dung dịch này đã bão hòa hoàn toàn", "Cẩn thận cháy nắng khi ra biển vào buổi trưa",
           "Lũ trẻ đang chơi ngoài sân trường", "Phòng cháy chữa cháy là trách nhiệm của mọi người",
           "Vé xem trận chung kết đã cháy vé từ hôm qua"],
    "ru": ["Угроза срыва поставок сохраняется", "Прочистите дымоход перед зимой",
           "Добро пожаловать в Волгоград", "Дед Мороз придёт на праздник в пятницу",
           "Утечка информации в компании расследуется"],
    "ar": ["جلسة عاصفة ذهنية للموظفين غدا صباحا", "الانفجار السكاني يمثل تحديا كبيرا للمدن",
           "اختبارات نهاية الفصل الدراسي تبدأ الأسبوع المقبل"],
    "hi": ["आगे बढ़ें और लाइन में रहें", "आगरा में ताजमहल देखने जाएं",
           "बिजली का बिल समय पर जमा करें", "जनसंख्या विस्फोट एक बड़ी चुनौती है"],
    "ko": ["불이익이 없도록 하십시오", "행사가 연기되었습니다", "우천으로 행사를 연기합니다",
           "문화재 관람 시간 안내", "대설명회 개최 안내", "정전기 발생에 주의하세요",
           "신제품이 폭발적인 인기를 얻고 있습니다", "문화산업 박람회가 열립니다",
           "배우의 연기력이 뛰어나다", "계산불가 항목은 제외합니다"],
    "ja": ["火曜日に会議があります", "花火大会は予定通り開催します", "盛り上がりが最高潮に達した",
           "子どもがゲームに熱中している", "ここは禁煙です", "SNSで炎上した", "嵐のコンサートに行きます",
           "爆発的な人気を集めている"],
    "zh": ["坐着火车去北京", "这家火锅店很好吃", "这首歌最近很火", "今年经济滑坡严重",
           "股价出现雪崩式下跌", "今天是大雪节气", "信息爆炸的时代", "明天上午召开头脑风暴会议",
           "餐具需高温消毒", "坐著火車去台北", "這家火鍋店很好吃", "資訊爆炸的時代"],
}

REQUIRED_LANGUAGES = ("en", "ar", "zh", "fr", "de", "ht", "hi", "it", "ko", "pt", "ru", "es",
                      "tl", "vi", "ja")


def _cases(table):
    return [pytest.param(lang, *case, id=f"{lang}-{n}") for lang, cases in table.items()
            for n, case in enumerate(cases)]


@pytest.mark.parametrize("lang, text, hint, hazard", _cases(ALERTS))
def test_alerts_in_every_language(lang, text, hint, hazard):
    found = primary_subject(text, language=hint)
    assert (found.hazard, found.language, found.source) == (hazard, lang, "text")
    assert found.word == HAZARDS[[h.key for h in HAZARDS].index(hazard)].subject
    assert found.matched and found.matched in unicodedata.normalize("NFKC", text)
    assert found.prompt.isascii() and 0 < len(found.prompt) <= MAX_PROMPT
    if lang != "en" or hazard in NOTICES:
        # the hazard's English scene, never the alert's own words
        assert found.prompt == SCENES[hazard]
    else:
        assert found.prompt == text


@pytest.mark.parametrize("lang, text", [pytest.param(lang, text, id=f"{lang}-{n}")
                                        for lang, texts in FALSE_FRIENDS.items()
                                        for n, text in enumerate(texts)])
def test_false_friends_name_no_hazard(lang, text):
    found = primary_subject(text, language=lang)
    assert (found.hazard, found.matched, found.source) == (None, None, "none"), found
    assert found.word == "emergency"


def test_every_language_has_false_friends_and_alerts():
    for lang in REQUIRED_LANGUAGES:
        assert len(FALSE_FRIENDS[lang]) >= 3, lang
        assert len(ALERTS[lang]) >= 4, lang
        assert lang in TERMS, lang


def test_korean_particles_and_compounds_still_match():
    for text, hazard in [("화재가 발생했습니다", "fire"), ("화재로 인해 통제", "fire"),
                         ("홍수경보 발령", "flood"), ("지진해일 주의", "tsunami"),
                         ("불이 났습니다 대피하세요", "fire"), ("연기 흡입에 주의하세요", "smoke"),
                         ("유독가스가 퍼지고 있습니다", "smoke"), ("가스 누출 사고 발생", "chemical_leak")]:
        assert primary_subject(text).hazard == hazard, text


def test_english_needs_whole_words_with_inflections():
    assert primary_subject("Floods and flooding downtown").hazard == "flood"
    assert primary_subject("Roads flooded near the river").hazard == "flood"
    assert primary_subject("A man with a firearm was seen near the school").hazard is None
    assert primary_subject("Fires are burning near the highway").matched == "Fires"


# --- languages ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, hint, language", [
    ("Alerta de tsunami: evacúe las zonas costeras ahora", "es-US", "es"),
    ("地震速報：請注意自身安全", "zh-Hant", "zh"),
    ("Babala ng baha sa mga mabababang lugar", "fil", "tl"),
    ("Flood warning for the river district until noon", "EN", "en"),
    ("Flood warning for the river district until noon", "en_US", "en"),
    # CAP's language defaults to en-US: a hint that contradicts the script is not trusted
    ("하천 홍수경보 발령, 저지대 주민 대피", "en-US", "ko"),
    ("Flood warning for the river district until noon", "ko-KR", "en"),
    ("大雨特別警報が発表されました", None, "ja"),
    ("大雨特别警报", None, "zh"),
    ("Увага! Сильний вітер і гроза, залишайтеся вдома.", None, "uk"),
    ("", None, "und"),
    ("12345 !!!", None, "und"),
    ("Flood warning for the river district until noon", "not a tag", "en"),
])
def test_language_decision(text, hint, language):
    assert primary_subject(text, language=hint).language == language


def test_one_or_two_latin_words_are_undetermined_and_search_every_latin_lexicon():
    for text, hazard in [("fire", "fire"), ("Fire!", "fire"), ("flood", "flood"),
                         ("Incendio", "fire"), ("Waldbrand", "wildfire"),
                         ("Lindol!", "earthquake")]:
        found = primary_subject(text)
        assert (found.language, found.hazard, found.prompt) == ("und", hazard, SCENES[hazard])
    assert primary_subject("Tornado sighted nearby").language == "en"


def test_matched_is_the_alerts_own_surface_form():
    assert primary_subject("Hochwasserwarnung für den Rhein").matched == "Hochwasserwarnung"
    assert primary_subject("أمطارٌ غزيرةٌ متوقعة اليوم في المنطقة").matched == "أمطارٌ غزيرةٌ"
    assert primary_subject("INUNDACIÓN en la zona baja del río").matched == "INUNDACIÓN"
    assert primary_subject("Flash  flood\twarning today").matched == "Flash flood"


def test_chinese_and_japanese_fall_back_on_each_other():
    found = primary_subject("大津波警報")  # kanji only: read as Chinese, named in Japanese
    assert (found.language, found.hazard) == ("zh", "tsunami")
    assert primary_subject("颱風警報", language="ja").hazard == "typhoon"


def test_language_without_lexicon_uses_its_scripts_lexicons():
    found = primary_subject("Увага! Сильний вітер і гроза, залишайтеся вдома.")
    assert (found.language, found.hazard) == ("uk", "severe_thunderstorm")
    assert found.prompt == SCENES["severe_thunderstorm"]


def test_latin_script_alerts_that_are_not_english_are_never_the_prompt():
    for text in ["Waarschuwing: zware storm, blijf binnen en sluit ramen en deuren.",
                 "Ostrzeżenie przed powodzią, mieszkańcy powinni opuścić domy.",
                 "Peringatan tsunami, segera evakuasi ke tempat yang lebih tinggi."]:
        found = primary_subject(text)
        assert found.language != "en"
        assert found.prompt in {*SCENES.values(), NEUTRAL_SCENE}


# --- CAP event codes and event text ------------------------------------------------------------

SAME_EXPECTED = {
    "TOR": "tornado", "TOA": "tornado", "FFW": "flash_flood", "FFA": "flash_flood",
    "FFS": "flash_flood", "SVR": "severe_thunderstorm", "SVA": "severe_thunderstorm",
    "SQW": "snow_squall", "DSW": "dust_storm", "HUW": "hurricane", "HUA": "hurricane",
    "SSW": "storm_surge", "SSA": "storm_surge", "EWW": "extreme_wind", "RWT": "test",
    "RMT": "test", "DMO": "test", "NPT": "test", "FRW": "fire", "TSW": "tsunami",
    "TSA": "tsunami", "EQW": "earthquake", "AVW": "avalanche", "AVA": "avalanche",
    "HMW": "hazmat", "TOE": "telephone_outage", "CAE": "missing_person", "BZW": "blizzard",
    "WSW": "winter_storm", "HWW": "high_wind", "FLW": "flood", "FLA": "flood", "FLS": "flood",
    "NUW": "radiological", "RHW": "radiological", "VOW": "volcano", "WFW": "wildfire",
    "BWW": "boil_water", "CFW": "coastal_flood", "DBW": "dam_failure", "LSW": "landslide",
}


@pytest.mark.parametrize("code, hazard", sorted(SAME_EXPECTED.items()))
def test_same_codes(code, hazard):
    found = primary_subject("Take protective action now.", event_codes=[("SAME", code)])
    assert (found.hazard, found.source, found.matched) == (hazard, "event_code", code)


@pytest.mark.parametrize("code", ["CEM", "LAE", "CDW", "EVI", "SPW", "LEW", "ADR", "NIC", "EAN"])
def test_same_codes_without_a_hazard_leave_it_to_the_text(code):
    found = primary_subject("Gas leak on Elm Street, avoid the area", event_codes=[("SAME", code)])
    assert (found.hazard, found.source) == ("chemical_leak", "text")
    assert primary_subject("Avoid the area", event_codes=[("SAME", code)]).hazard is None


def test_every_same_and_cap_cp_code_maps_to_a_known_hazard():
    keys = {h.key for h in HAZARDS}
    assert set(SAME.values()) <= keys and set(CAP_CP.values()) <= keys
    assert all(re.fullmatch("[A-Z]{3}", code) for code in SAME)


@pytest.mark.parametrize("name", ["SAME", "same", "Same", " SAME "])
def test_value_names_are_case_insensitive(name):
    assert primary_subject("Take cover", event_codes=[(name, "tor")]).hazard == "tornado"


def test_event_code_forms_and_junk():
    assert primary_subject("x", event_codes={"SAME": "TOR"}).hazard == "tornado"
    nws = {"SAME": ["FFW"], "NationalWeatherService": ["FFW"]}  # api.weather.gov's shape
    assert primary_subject("x", event_codes=nws).hazard == "flash_flood"
    cap_cp = [("profile:CAP-CP:Event:0.4", "wildFire")]
    assert primary_subject("x", event_codes=cap_cp).hazard == "wildfire"
    junk = [None, ("SAME",), 42, ("SAME", None), ("FIPS6", "048201"), ("SAME", "XYZ"),
            ("weird", "TOR"), (1, 2)]
    found = primary_subject("Flood warning for the river", event_codes=junk)
    assert (found.hazard, found.source) == ("flood", "text")


def test_several_codes_take_the_first_refined_by_the_others():
    assert primary_subject("x", event_codes=[("SAME", "FLW"), ("SAME", "TOR")]).hazard == "flood"
    codes = [("SAME", "FLW"), ("SAME", "FFW")]
    assert primary_subject("x", event_codes=codes).hazard == "flash_flood"
    codes = [("SAME", "FLW"), ("SAME", "RWT")]
    assert primary_subject("x", event_codes=codes).hazard == "test"


@pytest.mark.parametrize("event, hazard", [
    ("Flood Warning", "flood"), ("Alerta de tsunami", "tsunami"), ("Avis de tempête", "storm"),
    ("Hochwasserwarnung", "flood"), ("Allerta meteo per temporali", "severe_thunderstorm"),
    ("Aviso de ressaca do mar", "storm_surge"), ("호우경보", "heavy_rain"),
    ("大雨警報", "heavy_rain"), ("台风预警", "typhoon"), ("颱風警報", "typhoon"),
    ("Предупреждение о сильном ветре", "high_wind"), ("تحذير من الفيضانات", "flood"),
    ("Babala sa Bagyo", "typhoon"), ("Cảnh báo lũ quét", "flash_flood"),
    ("बाढ़ की चेतावनी", "flood"), ("Avètisman siklòn", "hurricane"),
    ("Tornado Emergency", "tornado_emergency"),
])
def test_cap_event_text_in_any_language(event, hazard):
    found = primary_subject("Residents must follow the instructions of local officials",
                            event=event)
    assert (found.hazard, found.source) == (hazard, "event")


def test_event_wins_over_text_and_codes_over_event():
    text = "Wildfire smoke is spreading over the valley"
    assert primary_subject(text).hazard == "wildfire"
    found = primary_subject(text, event="Flood Warning")
    assert (found.hazard, found.source, found.matched) == ("flood", "event", "Flood")
    found = primary_subject(text, "Flood Warning", event_codes=[("SAME", "TOR")])
    assert (found.hazard, found.source, found.matched) == ("tornado", "event_code", "TOR")


def test_a_later_source_only_refines():
    text = "FLASH FLOOD EMERGENCY for Houston. Move to higher ground now."
    found = primary_subject(text, event_codes=[("SAME", "FFW")])
    assert (found.hazard, found.source) == ("flash_flood_emergency", "text")
    found = primary_subject(text, event="Flash Flood Warning")
    assert found.hazard == "flash_flood_emergency"
    found = primary_subject("Wildfire near the town", event="Fire Warning")
    assert (found.hazard, found.source) == ("wildfire", "text")
    found = primary_subject("A tornado touched down", event_codes=[("SAME", "FFW")])
    assert (found.hazard, found.source) == ("flash_flood", "event_code")


def test_english_prompt_names_the_hazard_when_the_text_does_not():
    found = primary_subject("Residents near the river must leave", event="Flood Warning")
    assert found.prompt == f"Residents near the river must leave, {SCENES['flood']}"
    found = primary_subject("Flooding on Main Street, leave now", event="Flash Flood Warning")
    assert found.prompt == "Flooding on Main Street, leave now"


# --- precedence, scenes, fallback ---------------------------------------------------------------

@pytest.mark.parametrize("text, hazard", [
    ("Wildfire and a house fire reported", "wildfire"), ("A fire started the wildfire", "wildfire"),
    ("Flash flood warning for the river district", "flash_flood"),
    ("Flood watch and flash flood warning", "flash_flood"),
    ("Snow and heavy snow expected", "heavy_snow"), ("Heavy snow, then more snow", "heavy_snow"),
    ("Tornado emergency: the tornado is on the ground", "tornado_emergency"),
    ("Tsunami warning after the earthquake: move to high ground", "tsunami"),
    ("Hurricane-force winds expected tonight", "extreme_wind"),
    ("This is a test of the tornado warning system", "test"),
    ("森林火灾", "wildfire"), ("山火事が発生", "wildfire"), ("산림화재 발생", "wildfire"),
    ("Waldbrand", "wildfire"), ("incendio forestal e incendio urbano", "wildfire"),
    ("폭풍해일 주의보", "storm_surge"), ("Sturmflut an der Nordsee", "storm_surge"),
])
def test_compound_hazards_win_over_their_parts(text, hazard):
    assert primary_subject(text).hazard == hazard


@pytest.mark.parametrize("text, hazard", [
    # alerts lead with their headline: the first hazard named is the subject ...
    ("[기상청] 06:00 호우경보 발효. 산사태, 상습침수 등 위험지역 대피, 외출자제 등 안전에 주의바랍니다",
     "heavy_rain"),
    ("Severe Thunderstorm Warning until 6 PM. A tornado is possible.", "severe_thunderstorm"),
    ("Landslide risk on the mountain road after heavy rain", "landslide"),
    ("Air Quality Alert: wildfire smoke will cause unhealthy air", "fine_dust"),
    ("Storm Surge Warning: life-threatening inundation from Hurricane Ian", "storm_surge"),
    ("暴雨红色预警：请注意防范城市内涝和山洪", "heavy_rain"),
    # ... refined by a finer hazard named anywhere ...
    ("Unwetterwarnung: schwere Gewitter mit Hagel und Sturmböen", "severe_thunderstorm"),
    ("Storm warning: damaging winds and a thunderstorm", "high_wind"),
    # ... unless a test or a tsunami is named anywhere
    ("An M7.1 earthquake occurred offshore. A tsunami warning has been issued.", "tsunami"),
    ("Tornado siren test today at noon", "test"),
])
def test_the_first_hazard_named_leads(text, hazard):
    assert primary_subject(text).hazard == hazard


@pytest.mark.parametrize("text", [
    "M5.1 earthquake near the coast. No tsunami is expected.",
    "Magnitude 6 earthquake, there is no threat of a tsunami",
    "Sismo de magnitud 6.1, no hay riesgo de tsunami",
    "Séisme de magnitude 5, pas de risque de tsunami",
    "Terremoto di magnitudo 5, nessun rischio di tsunami",
    "Terremoto de magnitude 5, não há risco de tsunami",
    "Erdbeben der Stärke 5, keine Tsunamigefahr",
    "Lindol na magnitude 5, walang banta ng tsunami",
    "Động đất 5 độ, không có nguy cơ sóng thần",
    "Землетрясение магнитудой 5, угрозы цунами нет",
    "زلزال بقوة 5 درجات ولا يوجد خطر تسونامي",
    "5 तीव्रता का भूकंप, सुनामी का कोई खतरा नहीं",
    "규모 5.0 지진 발생, 지진해일 발생 가능성 없음",
    "この地震による津波の心配はありません",
    "发生5级地震，不会引发海啸",
])
def test_no_tsunami_expected_is_an_earthquake(text):
    assert primary_subject(text).hazard == "earthquake"


def test_priority_order_lists_every_part_after_its_compounds():
    order = [h.key for h in HAZARDS]
    for i, h in enumerate(HAZARDS):
        if h.parent is not None:
            assert h.parent in order and order.index(h.parent) > i, h.key


@pytest.mark.parametrize("hazard", NOTICES)
def test_notice_scenes_are_not_disaster_imagery(hazard):
    scene = SCENES[hazard].lower()
    assert not [w for w in DISASTER_WORDS if w in scene], scene
    assert not [w for w in DISASTER_WORDS if w in NEUTRAL_SCENE.lower()]


@pytest.mark.parametrize("text, hazard", [
    ("This is a test of the tornado warning system. No action is needed.", "test"),
    ("Required monthly test of the flood sirens in Polk County", "test"),
    ("Boil water notice after the flooding on Elm Street", "boil_water"),
    ("911 service is down after the storm; call 555-0100", "telephone_outage"),
    ("Missing hiker last seen near the flooded creek", "missing_person"),
])
def test_notices_never_show_disaster_imagery(text, hazard):
    found = primary_subject(text)
    assert found.hazard == hazard
    if hazard in NOTICES:
        assert found.prompt == SCENES[hazard]
        assert not [w for w in DISASTER_WORDS if w in found.prompt.lower()]


def test_no_hazard_gets_a_neutral_scene():
    found = primary_subject("Please stay tuned for further instructions")
    assert (found.word, found.matched, found.hazard, found.source) == (
        "emergency", None, None, "none")
    assert found.prompt == f"Please stay tuned for further instructions, {NEUTRAL_SCENE}"
    found = primary_subject("추가 안내가 있을 때까지 기다려 주십시오")
    assert (found.hazard, found.prompt, found.language) == (None, NEUTRAL_SCENE, "ko")


def test_every_scene_is_short_ascii_english():
    for h in HAZARDS:
        assert h.scene.isascii() and h.subject.isascii() and len(h.scene) < 150, h.key


def test_control_characters_rtl_and_emoji_do_not_break_it():
    found = primary_subject("\x00\x1b[31m🔥 fire\u202e near \u200fالمبنى\x7f")
    assert (found.word, found.language) == ("fire", "en")
    assert not [c for c in found.prompt if unicodedata.category(c)[0] == "C"]
    found = primary_subject("Tornado\u0000 warning\u200b until\x1b 5 PM\r\n\ttake cover")
    assert found.prompt == "Tornado warning until 5 PM take cover"


def test_long_english_alerts_are_cut_at_a_word():
    text = "Flood warning " + "stay away from the river banks and low water crossings " * 20
    found = primary_subject(text)
    assert len(found.prompt) <= MAX_PROMPT and text.startswith(found.prompt)
    assert text[len(found.prompt)] == " "


def test_english_prompt_is_ascii():
    found = primary_subject("Flood warning: “don’t” cross the café bridge – 30°F tonight")
    assert found.prompt == 'Flood warning: "don\'t" cross the cafe bridge - 30 degrees F tonight'


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=1500),
       event=st.none() | st.text(max_size=80),
       language=st.sampled_from([None, "", "en", "en-US", "es-US", "zh-Hant", "ko", "xx", "???"]),
       codes=st.lists(st.tuples(st.sampled_from(["SAME", "same", "x"]), st.text(max_size=4)),
                      max_size=3))
def test_any_input_gives_a_bounded_ascii_prompt(text, event, language, codes):
    found = primary_subject(text, event, language=language, event_codes=codes)
    assert isinstance(found, Subject)
    assert found.prompt.isascii() and 0 < len(found.prompt) <= MAX_PROMPT
    assert not [c for c in found.prompt if unicodedata.category(c)[0] == "C"]
    assert found.hazard in {None, *SCENES}
    assert found.source in {"event_code", "event", "text", "none"}
    assert (found.hazard is None) == (found.source == "none") == (found.matched is None)
    if found.language != "en":
        assert found.prompt in {*SCENES.values(), NEUTRAL_SCENE}
