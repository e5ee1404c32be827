"""Stage 3a in the languages of EU-Alert, Turkish, Ukrainian, Indonesian and Thai: alerts as
the warning services write them, their false friends and compounds, telling close languages
apart on short texts, and a hazard named specifically ahead of a generic warning word."""

import shutil
import unicodedata
from importlib.resources import as_file, files

import pytest

from alertanim.pipeline.lexicon import (CAP_PREFERENCE, GENERIC, HAZARDS, LANGUAGES, TERMS,
                                        LexiconError, load_lexicons)
from alertanim.pipeline.subject import MAX_PROMPT, primary_subject
from alertanim.pipeline.subject_language import decide_language

SCENES = {h.key: h.scene for h in HAZARDS}
SUBJECTS = {h.key: h.subject for h in HAZARDS}
NEW_LANGUAGES = ("bg", "hr", "cs", "da", "nl", "et", "fi", "el", "hu", "ga", "lv", "lt", "mt",
                 "pl", "ro", "sk", "sl", "sv", "tr", "uk", "id", "th")
# The hazards every new lexicon names (en.yaml's that warning services issue everywhere).
CORE = ("fire", "wildfire", "flood", "storm", "tsunami", "earthquake", "landslide", "heat_wave",
        "extreme_cold", "snow", "radiological", "chemical_leak", "hazmat", "explosion", "smoke",
        "heavy_rain", "high_wind", "severe_thunderstorm", "boil_water", "power_outage", "test")

# (alert, language hint, expected hazard), written the way each country's service writes them;
# the language is detected without a hint unless one is given.
ALERTS = {
    "nl": [
        ("Er is een grote brand in Rotterdam. Sluit ramen en deuren.", None, "fire"),
        ("NL-Alert: Er is een grote natuurbrand op de Veluwe bij Ede. Vermijd het gebied.",
         None, "wildfire"),
        ("NL-Alert: Kans op overstroming van de Maas in Limburg. Volg de aanwijzingen van de "
         "gemeente.", None, "flood"),
        ("Code oranje: zware windstoten tot 100 km/u. Blijf zoveel mogelijk binnen.", None,
         "high_wind"),
        ("NL-Alert: Er is een gaslek in de Kalverstraat. Ga naar binnen, sluit ramen en deuren "
         "en zet de ventilatie uit.", None, "chemical_leak"),
        ("Dit is een test van NL-Alert. U hoeft niets te doen.", None, "test"),
        ("Door een storing is 112 niet bereikbaar. Bel bij nood 0900-8844.", None,
         "telephone_outage"),
        ("BE-Alert: Hevig onweer met hagel verwacht. Blijf binnen.", "nl-BE",
         "severe_thunderstorm"),
    ],
    "sv": [
        ("Viktigt meddelande till allmänheten: Det brinner i en industribyggnad i Västerås. "
         "Stäng dörrar, fönster och ventilation.", None, "fire"),
        ("VMA: Skogsbrand norr om Ljusdal. Lämna området omedelbart och följ "
         "räddningstjänstens anvisningar.", None, "wildfire"),
        ("SMHI varnar för skyfall i Stockholms län. Undvik källare och låglänta områden.",
         None, "heavy_rain"),
        ("Risk för översvämning längs Göta älv. Flytta värdesaker från källaren.", None,
         "flood"),
        ("Gasutsläpp vid hamnen i Stenungsund. Gå inomhus och stäng fönster.", "sv-SE",
         "chemical_leak"),
        ("Kraftiga stormbyar och snöfall väntas i fjällen under natten.", None, "high_wind"),
    ],
    "da": [
        ("Stor brand på havnen i Aarhus. Hold døre og vinduer lukket.", None, "fire"),
        ("Politiet advarer: stormflod ved den jyske vestkyst i nat. Følg myndighedernes "
         "anvisninger.", None, "storm_surge"),
        ("DMI varsler skybrud over København. Undgå kældre og lavtliggende veje.", None,
         "heavy_rain"),
        ("Brand i lagerhal i Kolding med kraftig røgudvikling. Luk vinduer og døre.", "da-DK",
         "fire"),
        ("Jordskælv målt i Sønderjylland i nat. Der er ingen fare for tsunami.", None,
         "earthquake"),
        ("Dette er en test af sirenerne. Der er ingen fare.", None, "test"),
    ],
    "fi": [
        ("Vaaratiedote: Vantaalla on suuri tulipalo. Pysy sisällä ja sulje ovet, ikkunat ja "
         "ilmanvaihto.", None, "fire"),
        ("Vaaratiedote: Maastopalo Kuopion Pitkälahdessa. Vältä aluetta.", None, "wildfire"),
        ("Tulvavaroitus: Kyrönjoen vedenpinta nousee nopeasti. Siirrä irtaimisto turvaan.",
         None, "flood"),
        ("Rankkasadevaroitus pääkaupunkiseudulle, katuja ja kellareita voi tulvia.", None,
         "heavy_rain"),
        ("Kova tuuli ja myrsky katkovat sähköjä Lapissa.", "fi-FI", "high_wind"),
        ("Kerrostalopalossa Tampereella on syntynyt runsaasti savua, pysykää sisällä.", None,
         "fire"),
        ("Tämä on vain testi. Yleisen vaaramerkin koe maanantaina kello 12.", None, "test"),
    ],
    "et": [
        ("Ohuteade: Tallinnas Kopli tänaval on suur tulekahju. Sulgege aknad ja uksed.", None,
         "fire"),
        ("Ida-Virumaal on suur metsapõleng, vältige piirkonda.", None, "wildfire"),
        ("Tormihoiatus: Lääne-Eestis on oodata tugevat tuult ja kõrget veetaset.", None,
         "high_wind"),
        ("Pärnus on üleujutus, jõgi on tõusnud üle kallaste.", None, "flood"),
        ("Täna õhtul on oodata äikest ja rahet, püsige siseruumides.", "et", "severe_thunderstorm"),
        ("See on EE-ALARMi testsõnum. Tegutsema ei pea.", None, "test"),
    ],
    "hu": [
        ("Figyelem! Nagy erejű tűz ütött ki egy budapesti raktárban. Tartsák zárva az "
         "ablakokat.", None, "fire"),
        ("Erdőtűz a Pilisben, a terület lezárva, kerüljék el a környéket.", None, "wildfire"),
        ("Árvízvédelmi készültség a Tiszán, a folyó áradása folytatódik.", None, "flood"),
        ("Hőségriasztás: a hőmérséklet 35 fok fölé emelkedhet, igyanak sok vizet.", None,
         "heat_wave"),
        ("Viharos erejű széllökések és zivatar várható az ország nyugati részén.", None,
         "high_wind"),
        ("Ez egy tesztüzenet, semmilyen teendője nincs.", "hu-HU", "test"),
    ],
    "pl": [
        ("Alert RCB: Ostrzeżenie przed burzami z gradem. Unikaj otwartych przestrzeni.", None,
         "severe_thunderstorm"),
        ("Alert RCB: Pożar lasu w okolicach Rudy Raciborskiej. Nie wchodź do lasu.", None,
         "wildfire"),
        ("Alert RCB: Uwaga! Możliwe podtopienia w województwie małopolskim. Śledź komunikaty.",
         None, "flood"),
        ("Alert RCB: Dziś upał do 35 stopni. Pij dużo wody i unikaj słońca.", None,
         "heat_wave"),
        ("W budynku przy ulicy Długiej wybuchł pożar, ewakuuj się natychmiast.", None, "fire"),
        ("Alert RCB: Silny wiatr w porywach do 100 km/h. Zabezpiecz rzeczy na balkonie.",
         "pl-PL", "high_wind"),
        ("Woda nie nadaje się do spożycia, można ją pić wyłącznie po przegotowaniu.", None,
         "boil_water"),
    ],
    "cs": [
        ("Varování: požár skládky v Praze-Letňanech, zavřete okna a nevětrejte.", None,
         "fire"),
        ("Povodňová pohotovost na Labi v Ústí nad Labem, sledujte pokyny obce.", None,
         "flood"),
        ("ČHMÚ varuje: silné bouřky s kroupami a přívalovými srážkami.", None,
         "severe_thunderstorm"),
        ("Lesní požár v Českém Švýcarsku, oblast je uzavřena.", None, "wildfire"),
        ("Únik čpavku ze zimního stadionu, zavřete okna a zůstaňte doma.", "cs-CZ",
         "chemical_leak"),
        ("Zkouška sirén proběhne ve středu ve 12 hodin, nejde o poplach.", None, "test"),
    ],
    "sk": [
        ("Výstraha pred búrkami, hrozí krupobitie a nárazový vietor.", None,
         "severe_thunderstorm"),
        ("Požiar v priemyselnom areáli v Bratislave, zatvorte okná.", None, "fire"),
        ("Povodňová pohotovosť na Hrone, obyvatelia sa evakuujú.", None, "flood"),
        ("Výstraha pred vysokými teplotami, pite veľa vody a nevychádzajte na slnko.", None,
         "heat_wave"),
        ("Lavínové nebezpečenstvo vo Vysokých Tatrách je veľké.", "sk", "avalanche"),
        ("Preskúšanie sirén bude v piatok o 12. hodine, nie je to poplach.", None, "test"),
    ],
    "sl": [
        ("Opozorilo: požar v naravi na Krasu. Ne hodite v gozd.", None, "wildfire"),
        ("Poplave v Savinjski dolini, prebivalci naj se umaknejo na višje ležeče kraje.", None,
         "flood"),
        ("Neurje s točo in močnim vetrom je zajelo Štajersko.", None, "severe_thunderstorm"),
        ("Zaradi žleda so ceste in železnice na Notranjskem zaprte.", None, "ice_storm"),
        ("Potres z magnitudo 4,2 je stresel Ljubljano in okolico.", None, "earthquake"),
        ("Preizkus siren bo v soboto opoldne, ne gre za nevarnost.", "sl-SI", "test"),
    ],
    "hr": [
        ("Upozorenje: šumski požar kod Splita. Zatvorite prozore i ne izlazite.", None,
         "wildfire"),
        ("Poplave u Slavoniji, evakuacija stanovnika je u tijeku.", None, "flood"),
        ("DHMZ upozorava: olujni vjetar i jaka bura na cijelom Jadranu.", None, "high_wind"),
        ("Potres magnitude 5,5 pogodio je Zagreb. Izađite iz zgrada.", None, "earthquake"),
        ("Nevrijeme u Dalmaciji: obilna kiša i grmljavina tijekom noći.", None, "heavy_rain"),
        ("Ovo je samo test sustava za uzbunjivanje građana.", "hr-HR", "test"),
    ],
    "ro": [
        ("RO-ALERT: Incendiu de vegetație în zona Sibiu. Închideți ferestrele.", None,
         "wildfire"),
        ("Mesaj RO-ALERT: Cod roșu de inundații pe râul Siret. Evacuați zona.", None, "flood"),
        ("Cod portocaliu de caniculă în București, evitați expunerea la soare.", None,
         "heat_wave"),
        ("Cutremur cu magnitudinea 5,2 în zona Vrancea, păstrați-vă calmul.", None,
         "earthquake"),
        ("Vânt puternic cu rafale de peste 90 km/h în Dobrogea, evitați deplasările.", "ro-RO",
         "high_wind"),
        ("Acesta este un mesaj de test RO-ALERT. Nu este necesară nicio acțiune.", None,
         "test"),
    ],
    "lt": [
        ("Dėmesio! Didelis gaisras Vilniaus Naujamiestyje. Uždarykite langus ir duris.", None,
         "fire"),
        ("Potvynio pavojus Nemuno deltoje, gyventojai evakuojami.", None, "flood"),
        ("Perspėjimas: stiprus vėjas ir škvalai pajūryje, venkite išvykų.", None,
         "high_wind"),
        ("Karščio banga: temperatūra pakils iki 33 laipsnių, gerkite daug vandens.", None,
         "heat_wave"),
        ("Pūga ir plikledis keliuose, vairuokite atsargiai.", "lt-LT", "blizzard"),
        ("Tai tik bandymas, jokių veiksmų nereikia.", None, "test"),
    ],
    "lv": [
        ("Uzmanību! Liels ugunsgrēks Rīgas ostā. Aizveriet logus un durvis.", None, "fire"),
        ("Plūdu draudi Daugavas krastos, iedzīvotāji tiek evakuēti.", None, "flood"),
        ("Brīdinājums: stiprs vējš un vēja brāzmas līdz 25 metriem sekundē.", None,
         "high_wind"),
        ("Meža ugunsgrēks pie Jūrmalas, izvairieties no šīs teritorijas.", None, "wildfire"),
        ("Negaiss ar krusu gaidāms Kurzemē šovakar.", "lv-LV", "severe_thunderstorm"),
        ("Šī ir testa ziņa. Nekas nav jādara.", None, "test"),
    ],
    "mt": [
        ("Twissija: qabad nar f'fabbrika f'Ħal Far. Żommu t-twieqi magħluqa.", None, "fire"),
        ("Twissija ta' maltempata: riħ qawwi u xita qawwija mistennija llejla.", None,
         "high_wind"),
        ("Għargħar fit-toroq ta' Birkirkara wara x-xita qawwija tal-lejl.", None, "flood"),
        ("Mewġa ta' sħana: ixorbu ħafna ilma u evitaw ix-xemx.", "mt-MT", "heat_wave"),
        ("Terremot ta' qawwa 4.9 inħass f'Malta u Għawdex.", None, "earthquake"),
    ],
    "ga": [
        ("Rabhadh: tine mhór i mBaile Átha Cliath. Dún na fuinneoga agus na doirse.", None,
         "fire"),
        ("Tuilte i gCorcaigh, seachain na bóithre cois abhann.", "ga", "flood"),
        ("Rabhadh Stoirme: gaotha láidre agus báisteach throm anocht ar fud na tíre.", None,
         "high_wind"),
        ("Sneachta trom agus leac oighir ar na bóithre ar maidin.", "ga-IE", "heavy_snow"),
        ("Is tástáil é seo ar an gcóras rabhaidh, níl aon ghá le gníomh.", None, "test"),
    ],
    "tr": [
        ("AFAD: Kahramanmaraş Pazarcık'ta 7.7 büyüklüğünde deprem meydana gelmiştir.", None,
         "earthquake"),
        ("Orman yangını nedeniyle köylerin tahliye edilmesi gerekiyor.", None, "wildfire"),
        ("Meteorolojik uyarı: Karadeniz'de kuvvetli sağanak ve sel riski bulunuyor.", None,
         "heavy_rain"),
        ("Kuvvetli ve fırtınamsı rüzgar bekleniyor, çatı uçmalarına karşı dikkatli olun.",
         None, "high_wind"),
        ("İstanbul'da yoğun kar yağışı bekleniyor, zorunlu olmadıkça yola çıkmayın.", None,
         "heavy_snow"),
        ("Bu bir test mesajıdır, herhangi bir işlem yapmanıza gerek yoktur.", None, "test"),
        ("FABRİKADA KİMYASAL SIZINTI, PENCERELERİ KAPATIN.", "tr-TR", "chemical_leak"),
    ],
    "id": [
        ("BMKG: Gempa Mag:6.2, 21-Nov-22, berpotensi tsunami. Segera menjauh dari pantai.",
         None, "tsunami"),
        ("Info Gempa Mag:5.6, Lok:6.84 LS, 107.05 BT (10 km BaratDaya Cianjur), tidak "
         "berpotensi tsunami.", None, "earthquake"),
        ("Banjir bandang melanda desa, warga diminta mengungsi ke tempat yang lebih tinggi.",
         None, "flash_flood"),
        ("Peringatan dini cuaca ekstrem: hujan lebat disertai petir di Jakarta Selatan.",
         None, "heavy_rain"),
        ("Erupsi Gunung Semeru, awan panas guguran sejauh 5 km. Jauhi lereng gunung.", None,
         "volcano"),
        ("Kebakaran hutan dan lahan di Riau, kabut asap mengganggu penerbangan.", "id-ID",
         "wildfire"),
        ("Waspada tanah longsor di wilayah Bogor setelah hujan deras semalam.", None,
         "landslide"),
    ],
    "th": [
        ("ไฟไหม้อาคารพาณิชย์ย่านบางรัก กรุณาหลีกเลี่ยงพื้นที่", None, "fire"),
        ("เตือนภัยน้ำท่วมฉับพลันในจังหวัดเชียงใหม่ ให้ประชาชนขนของขึ้นที่สูง", None, "flash_flood"),
        ("แผ่นดินไหวขนาด 5.2 ที่จังหวัดเชียงราย ไม่ก่อให้เกิดสึนามิ", None, "earthquake"),
        ("เตือนภัยสึนามิ ให้ประชาชนอพยพขึ้นที่สูงทันที", None, "tsunami"),
        ("พายุฤดูร้อนพัดถล่ม มีลมกระโชกแรงและลูกเห็บ", "th-TH", "severe_thunderstorm"),
        ("ค่าฝุ่น PM2.5 เกินมาตรฐาน งดกิจกรรมกลางแจ้ง", None, "fine_dust"),
    ],
    "bg": [
        ("Внимание! Голям пожар в района на Стара Загора. Затворете прозорците.", None, "fire"),
        ("Наводнение в Царево, евакуирайте се на високо място.", None, "flood"),
        ("Оранжев код за силен вятър и поройни дъждове в Източна България.", None,
         "high_wind"),
        ("Горски пожар край Свиленград, пътят е затворен.", None, "wildfire"),
        ("Земетресение с магнитуд 4,5 беше усетено в София.", "bg-BG", "earthquake"),
        ("Това е тестово съобщение от системата BG-ALERT.", None, "test"),
    ],
    "uk": [
        ("Загроза підтоплення у Києві: рівень води у Дніпрі зростає.", None, "flood"),
        ("Штормове попередження: сильний вітер, пориви 15-20 м/с.", None, "high_wind"),
        ("Внаслідок обстрілу виникла пожежа на підприємстві. Зачиніть вікна.", None, "fire"),
        ("Прорив греблі Каховської ГЕС: жителям прибережних районів евакуюватися.", None,
         "dam_failure"),
        ("Сильна спека до +38, уникайте перебування на сонці.", "uk-UA", "heat_wave"),
        ("Технічна перевірка системи оповіщення, сирени увімкнуть о 12:00.", None, "test"),
    ],
    "el": [
        ("Πυρκαγιά σε εξέλιξη στην περιοχή σας. Απομακρυνθείτε από την περιοχή.", None,
         "fire"),
        ("112: Δασική πυρκαγιά στην περιοχή Βαρυμπόμπη. Εκκενώστε προς Αθήνα.", None,
         "wildfire"),
        ("Κακοκαιρία: ισχυρές βροχές και καταιγίδες. Περιορίστε τις μετακινήσεις.", None,
         "heavy_rain"),
        ("Πλημμύρα στον Βόλο, μείνετε στα ανώτερα επίπεδα των σπιτιών.", None, "flood"),
        ("Σεισμός 5,8 Ρίχτερ στην Κρήτη, απομακρυνθείτε από κτίρια.", "el-GR", "earthquake"),
        ("ΚΙΝΔΥΝΟΣ ΠΥΡΚΑΓΙΑΣ: ΠΟΛΥ ΥΨΗΛΟΣ ΚΙΝΔΥΝΟΣ ΠΥΡΚΑΓΙΑΣ ΑΥΡΙΟ ΣΤΗΝ ΑΤΤΙΚΗ", None,
         "wildfire"),
    ],
}

# Each holds a hazard word's spelling, a compound or a stem of one, and names no hazard.
FALSE_FRIENDS = {
    "nl": ["Brandstof bijtanken kan bij het tankstation aan de A2",
           "Vergeet je zonnebrand niet op het strand", "De brandweer houdt open dag op zaterdag",
           "Hagelslag en pindakaas bij het ontbijt", "Er kwam een storm van kritiek op het plan"],
    "sv": ["Brandväggen blockerar trafiken till servern", "Brandkåren har öppet hus på lördag",
           "Hagelgeväret förvaras i ett låst skåp"],
    "da": ["Brandvæsenet holder åbent hus i weekenden", "Brandmanden fik en medalje i går",
           "Haglgeværet skal opbevares i et aflåst skab"],
    "fi": ["Palokunta järjestää avoimet ovet lauantaina", "Tervetuloa Myrskylän kesäjuhlille",
           "Asiakaspalvelu oli tulvillaan kysymyksiä",
           "Yritysten määrä kasvoi räjähdysmäisesti viime vuonna"],
    "et": ["Ta tuli koju hilja õhtul", "Väike kohvik on täna suletud",
           "Poiss tormas uksest välja"],
    "hu": ["Délben erősen tűz a nap a strandon", "A tűzoltók nyílt napot tartanak szombaton",
           "Szilveszterkor tűzijáték lesz a Duna felett", "A tűzfal blokkolja a forgalmat"],
    "pl": ["Straż pożarna zaprasza na dzień otwarty", "Powodzenia na egzaminie jutro rano",
           "Burza mózgów w zespole projektowym w piątek", "Wybuch epidemii grypy w szkołach"],
    "cs": ["Hasiči zvou na den otevřených dveří", "Kouření je v celé budově zakázáno",
           "Výbuch smíchu zaplnil celý sál"],
    "sk": ["Hasičský zbor pozýva na deň otvorených dverí", "Fajčenie je v budove zakázané",
           "Výbuch smiechu zaplnil celú sálu"],
    "sl": ["Gasilci vabijo na dan odprtih vrat", "V gori je poleti zelo lepo",
           "Planinci so se povzpeli na vrh gore"],
    "hr": ["Vatrogasci pozivaju na dan otvorenih vrata",
           "Obilježena je obljetnica Oluje u Kninu",
           "Vatromet za Novu godinu na Trgu bana Jelačića"],
    "ro": ["Focurile de artificii încep la miezul nopții",
           "Deținerea armelor de foc este interzisă", "Fumatul este interzis în clădire"],
    "lt": ["Gaisrininkai kviečia į atvirų durų dieną", "Degalų kainos vėl kyla"],
    "lv": ["Ugunsdzēsēji aicina uz atvērto durvju dienu", "Krusts uz baznīcas torņa"],
    "mt": ["Narak għada fil-festa tar-raħal", "Il-ħanut jiftaħ fit-tmienja ta' filgħodu"],
    "ga": ["Tuilleadh eolais ar fáil ar ár suíomh gréasáin",
           "Beidh tine chnámh ann Oíche Shamhna"],
    "tr": ["Yangın söndürücüleri yılda bir kontrol ettirin",
           "Otopark dolu, lütfen başka yere park edin", "Volkan Bey toplantıya geç kaldı",
           "Çocuğun çığlığı duyuldu", "Bahçe hortumu ile çiçekleri sulayın",
           "Nüfus patlaması büyük şehirleri zorluyor"],
    "id": ["Kereta api berangkat pukul delapan pagi",
           "Banjir diskon di pusat perbelanjaan akhir pekan ini",
           "Dilarang merokok karena asap rokok berbahaya"],
    "th": ["เรื่องนี้ผมน้ำท่วมปากพูดไม่ได้", "รถไฟออกจากสถานีเวลาแปดโมง", "ค่าไฟฟ้าเดือนนี้แพงขึ้น",
           "กรุณาอย่าสูบบุหรี่ ควันบุหรี่เป็นอันตราย"],
    "bg": ["Пожарната служба кани граждани на ден на отворените врати",
           "Разходка в горите край Витоша"],
    "uk": ["Пожежна охорона проводить день відкритих дверей",
           "Дід Мороз приїде на свято в п'ятницю", "У селі відбудеться ярмарок"],
    "el": ["Τα προϊόντα καπνού πωλούνται μόνο σε ενήλικες", "Οι τιμές είναι φωτιά και λάβρα",
           "Μια έκρηξη γέλιου ακούστηκε στην αίθουσα"],
}

# Compounds and look-alikes that do name a hazard: the compound's, not the part's.
COMPOUNDS = [
    ("Bosbrand bij Ede, de brandweer is ter plaatse", "nl", "wildfire"),
    ("Woningbrand in Utrecht, er komt veel rook vrij", "nl", "fire"),
    ("Brandstoflekkage na een brand in de haven", "nl", "fire"),
    ("Skogsbrand nära Sälen, brandkåren är på plats", "sv", "wildfire"),
    ("Lägenhetsbrand i Malmö, brandväggen höll", "sv", "fire"),
    ("Skovbrand i Rold Skov, brandvæsenet er på stedet", "da", "wildfire"),
    ("Metsäpalo Kuusamossa, palokunta on paikalla", "fi", "wildfire"),
    ("Erdőtűz a Mátrában, a tűzoltók a helyszínen vannak", "hu", "wildfire"),
    ("Flächenbrand bei Brandenburg an der Havel", "de", "wildfire"),
    ("Hochwasserwarnung für die Elbe", "de", "flood"),
    ("Pożar lasu, straż pożarna na miejscu", "pl", "wildfire"),
    ("Sel felaketi sonrası bölgede yangın çıktı", "tr", "flood"),
    ("Kar fırtınası nedeniyle yollar kapandı", "tr", "blizzard"),
    ("Sárlavina zárta el az utat a hegyen", "hu", "landslide"),
    ("Lavina zárta el a sípályát", "hu", "avalanche"),
    ("Metsäpalovaroitus koko Lappiin", "fi", "wildfire"),
    ("Myrskyvaroitus merialueille", "fi", "storm"),
    ("Lumimyrsky sulki tiet Kainuussa", "fi", "blizzard"),
    ("Tormihoiatus Lääne-Eestis", "et", "storm"),
    ("Äikesetorm on oodata", "et", "severe_thunderstorm"),
]

# A hazard named specifically comes ahead of a word that names weather only in general.
NAMED_AHEAD = [
    ("Amtliche Unwetterwarnung: Hochwasser an der Ahr", "de", "flood"),
    ("Severe weather alert: flash flooding expected", "en", "flash_flood"),
    ("大雨警報", "ja", "heavy_rain"),
    ("Allerta maltempo: rischio alluvione in Liguria", "it", "flood"),
    ("Code oranje voor noodweer: zware windstoten tot 100 km/u", "nl", "high_wind"),
    ("Κακοκαιρία: πλημμύρες στη Θεσσαλία", "el", "flood"),
    ("Штормове попередження: ожеледиця на дорогах", "uk", "ice_storm"),
    ("Olumsuz hava koşulları: Antalya'da sel", "tr", "flood"),
    ("Cuaca ekstrem: angin kencang di pesisir selatan", "id", "high_wind"),
    ("Alert RCB: Niebezpieczne zjawiska pogodowe: intensywne opady deszczu", "pl",
     "heavy_rain"),
    ("Fenomene meteorologice periculoase: cod roșu de inundații", "ro", "flood"),
    ("Nevrijeme: tuča veličine oraha u Slavoniji", "hr", "severe_thunderstorm"),
    ("Oväder med skyfall över Göteborg", "sv", "heavy_rain"),
    ("Uvejr: stormflod ved Vadehavet", "da", "storm_surge"),
]

GENERIC_ALONE = [
    ("Amtliche Unwetterwarnung für den Kreis Ahrweiler", "de"),
    ("Severe weather alert for the county tonight", "en"),
    ("Κακοκαιρία σε όλη τη χώρα από αύριο", "el"),
    ("Cuaca ekstrem di wilayah Jawa Barat", "id"),
]


def _cases(table):
    return [pytest.param(lang, *case, id=f"{lang}-{n}") for lang, cases in table.items()
            for n, case in enumerate(cases)]


@pytest.mark.parametrize("lang, text, hint, hazard", _cases(ALERTS))
def test_alerts_in_the_new_languages(lang, text, hint, hazard):
    found = primary_subject(text, language=hint)
    assert (found.hazard, found.language, found.source) == (hazard, lang, "text"), found
    assert found.word == SUBJECTS[hazard]
    assert found.matched and found.matched in unicodedata.normalize("NFKC", text)
    assert found.prompt == SCENES[hazard] and len(found.prompt) <= MAX_PROMPT


@pytest.mark.parametrize("lang, text", [pytest.param(lang, text, id=f"{lang}-{n}")
                                        for lang, texts in FALSE_FRIENDS.items()
                                        for n, text in enumerate(texts)])
def test_false_friends_name_no_hazard(lang, text):
    found = primary_subject(text, language=lang)
    assert (found.hazard, found.matched, found.source) == (None, None, "none"), found


@pytest.mark.parametrize("lang, text", [pytest.param(lang, text, id=f"{lang}-{n}")
                                        for lang, texts in FALSE_FRIENDS.items()
                                        for n, text in enumerate(texts)])
def test_false_friends_name_no_hazard_without_a_hint(lang, text):
    assert primary_subject(text).hazard is None


@pytest.mark.parametrize("text, lang, hazard", COMPOUNDS)
def test_compounds_are_the_compounds_hazard(text, lang, hazard):
    assert primary_subject(text, language=lang).hazard == hazard


def test_every_new_language_has_a_lexicon_alerts_and_false_friends():
    for lang in NEW_LANGUAGES:
        assert lang in LANGUAGES and lang in CAP_PREFERENCE, lang
        assert len(ALERTS[lang]) >= 5 and len(FALSE_FRIENDS[lang]) >= 2, lang
        missing = [key for key in CORE if not TERMS[lang].get(key) and
                   not GENERIC[lang].get(key)]
        assert not missing, (lang, missing)


# --- telling close languages apart -------------------------------------------------------

@pytest.mark.parametrize("text, hint, language", [
    # Dutch and Swedish brand is their own fire, not German's
    ("Er is brand in de school aan de Kerkstraat", None, "nl"),
    ("Det brinner, brand i trapphuset på Storgatan", None, "sv"),
    ("Stor brand i et parcelhus i Odense", None, "da"),
    # Cyrillic: the letters decide
    ("Увага! Сильний вітер і гроза, залишайтеся вдома.", None, "uk"),
    ("Пожар в Стара Загора, въздухът е задимен", None, "bg"),
    ("Сильный ветер и гроза ожидаются вечером", None, "ru"),
    ("В районе объявлена эвакуация", None, "ru"),
    # one script, one language: the hint that contradicts it is not trusted
    ("Σεισμός 5,8 Ρίχτερ στην Κρήτη", "en-US", "el"),
    ("แผ่นดินไหวที่เชียงราย", "en-US", "th"),
    ("Πυρκαγιά στην Εύβοια", None, "el"),
    # close languages the model confuses: the one with a lexicon
    ("Poplave u Slavoniji, evakuacija stanovnika", None, "hr"),
    ("Banjir bandang melanda desa, warga diminta mengungsi", None, "id"),
    ("Gempa bumi M5,0 mengguncang Sukabumi", None, "id"),
    # the hint wins where it fits the script
    ("Poplave u Sarajevu, stanovnici trebaju napustiti kuće", "bs", "bs"),
    ("Pożar lasu w okolicach Rudy", "pol", "pl"),
    ("Tűz ütött ki a raktárban", "hun", "hu"),
])
def test_language_decision(text, hint, language):
    assert decide_language(text, hint) == language


def test_a_dutch_brand_is_read_as_dutch():
    found = primary_subject("Er is brand in de school aan de Kerkstraat")
    assert (found.language, found.hazard, found.matched) == ("nl", "fire", "brand")
    assert primary_subject("Brandstof bijtanken bij het tankstation").hazard is None


def test_a_language_without_a_lexicon_searches_its_scripts():
    found = primary_subject("Пожар во близина на Скопје, затворете ги прозорците.")
    assert found.hazard == "fire"


# --- a named hazard ahead of a generic word ----------------------------------------------

@pytest.mark.parametrize("text, lang, hazard", NAMED_AHEAD)
def test_a_named_hazard_is_ahead_of_a_generic_warning_word(text, lang, hazard):
    found = primary_subject(text, language=lang)
    assert found.hazard == hazard, found


@pytest.mark.parametrize("text, lang", GENERIC_ALONE)
def test_a_generic_warning_word_alone_is_a_storm(text, lang):
    found = primary_subject(text, language=lang)
    assert (found.hazard, found.source) == ("storm", "text")


def test_a_warning_word_that_names_nothing_is_no_hazard():
    assert primary_subject("警報が発表されました").hazard is None
    assert primary_subject("Weather alert issued for the county").hazard is None


def test_a_generic_event_gives_way_to_the_texts_named_hazard():
    found = primary_subject("Bitte meiden Sie die Uferbereiche, Hochwasser erwartet",
                            event="Unwetterwarnung")
    assert (found.hazard, found.source, found.matched) == ("flood", "text", "Hochwasser")
    found = primary_subject("Bitte meiden Sie die Uferbereiche", event="Unwetterwarnung")
    assert (found.hazard, found.source) == ("storm", "event")
    # a specific event still leads: the text only refines it
    found = primary_subject("Hochwasser erwartet", event="Sturmwarnung")
    assert (found.hazard, found.source) == ("storm", "event")


def test_a_specific_storm_word_is_no_generic_one():
    assert primary_subject("Sturm und Hochwasser an der Küste").hazard == "storm"
    assert primary_subject("Storm warning: flooding along the coast").hazard == "storm"


def test_no_tsunami_expected_is_an_earthquake_in_the_new_languages():
    for text in ["Jordskælv i Sønderjylland, ingen fare for tsunami",
                 "Trzęsienie ziemi, brak zagrożenia tsunami",
                 "Deprem meydana geldi, tsunami beklenmiyor",
                 "Gempa M5,1 tidak berpotensi tsunami",
                 "Σεισμός 5 Ρίχτερ, δεν υπάρχει κίνδυνος για τσουνάμι",
                 "Землетрус, загрози цунамі немає",
                 "Cutremur de 5 grade, nu există risc de tsunami",
                 "แผ่นดินไหวขนาด 5 ไม่ก่อให้เกิดสึนามิ"]:
        assert primary_subject(text).hazard == "earthquake", text


@pytest.mark.parametrize("generic, message", [
    ("generic:\n  smog_cloud:\n    - 'x'\n", r"de\.yaml: generic\.smog_cloud: no such hazard"),
    ("generic:\n  storm:\n    - '(?:unwetter'\n",
     r"de\.yaml: generic\.storm\[0\] '\(\?:unwetter': not a regular expression"),
])
def test_a_wrong_generic_section_is_refused(tmp_path, generic, message):
    with as_file(files("alertanim.pipeline") / "lexicons") as package:
        folder = shutil.copytree(package, tmp_path / "lexicons")
    path = folder / "de.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("generic:\n"), text.index("exclusions:\n")
    path.write_text(text[:start] + generic + text[end:], encoding="utf-8")
    with pytest.raises(LexiconError, match=message):
        load_lexicons(folder)
