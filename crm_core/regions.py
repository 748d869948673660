"""Russian federal subjects as people write them, and the time zone of each.

230-FZ art. 7 counts calling hours in the debtor's local time "by the place of residence or
stay known to the creditor", so the address region of an imported debt sets the debtor's
`Client.time_zone`; only without it does the guard fall back to the phone number, and a
Russian mobile number spans every zone from Kaliningrad to Kamchatka.

A region is found by its official name, by the short and informal forms (`г. Москва`,
`Свердловская обл.`, `Респ. Татарстан`, `Татарстан Респ`, `Башкирия`, `ХМАО`, `СПб`), by
its two-digit code (the tax and statistics codes 01..95, `77` is Moscow), or by the first
comma-separated part of an address that names one (`Свердловская обл., г. Екатеринбург`).
Yakutia is found but has no zone: it spans three (UTC+9..+11), so its debtors' local time
comes from the number, where the guard then takes every zone it could be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    code: str  # two digits, as in tax and statistics codes
    name: str  # the official name, which the import stores in Debt.region
    time_zone: str | None  # IANA zone; None for a subject that spans several


# (code, official name, IANA zone, other forms people write). The official name's own words are
# matched too, once the kind (республика, область, край, ...) is taken off.
_SUBJECTS: tuple[tuple[str, str, str | None, tuple[str, ...]], ...] = (
    ("01", "Республика Адыгея", "Europe/Moscow", ("адыгея", "адыгейская")),
    ("02", "Республика Башкортостан", "Asia/Yekaterinburg", ("башкирия",)),
    ("03", "Республика Бурятия", "Asia/Irkutsk", ("бурятия",)),
    ("04", "Республика Алтай", "Asia/Barnaul", ("горный алтай",)),
    ("05", "Республика Дагестан", "Europe/Moscow", ("дагестан",)),
    ("06", "Республика Ингушетия", "Europe/Moscow", ("ингушетия",)),
    ("07", "Кабардино-Балкарская Республика", "Europe/Moscow", ("кабардино балкария", "кбр")),
    ("08", "Республика Калмыкия", "Europe/Moscow", ("калмыкия",)),
    ("09", "Карачаево-Черкесская Республика", "Europe/Moscow", ("карачаево черкесия", "кчр")),
    ("10", "Республика Карелия", "Europe/Moscow", ("карелия",)),
    ("11", "Республика Коми", "Europe/Moscow", ("коми",)),
    ("12", "Республика Марий Эл", "Europe/Moscow", ("марий эл", "марийская")),
    ("13", "Республика Мордовия", "Europe/Moscow", ("мордовия",)),
    ("14", "Республика Саха (Якутия)", None, ("саха", "якутия", "саха якутия")),
    ("15", "Республика Северная Осетия — Алания", "Europe/Moscow",
     ("северная осетия", "алания", "северная осетия алания", "рсо алания")),
    ("16", "Республика Татарстан", "Europe/Moscow", ("татарстан",)),
    ("17", "Республика Тыва", "Asia/Krasnoyarsk", ("тыва", "тува")),
    ("18", "Удмуртская Республика", "Europe/Samara", ("удмуртия", "ур")),
    ("19", "Республика Хакасия", "Asia/Krasnoyarsk", ("хакасия",)),
    ("20", "Чеченская Республика", "Europe/Moscow", ("чечня",)),
    ("21", "Чувашская Республика — Чувашия", "Europe/Moscow", ("чувашия", "чувашская")),
    ("22", "Алтайский край", "Asia/Barnaul", ()),
    ("23", "Краснодарский край", "Europe/Moscow", ("кубань",)),
    ("24", "Красноярский край", "Asia/Krasnoyarsk", ()),
    ("25", "Приморский край", "Asia/Vladivostok", ("приморье",)),
    ("26", "Ставропольский край", "Europe/Moscow", ("ставрополье",)),
    ("27", "Хабаровский край", "Asia/Vladivostok", ()),
    ("28", "Амурская область", "Asia/Yakutsk", ()),
    ("29", "Архангельская область", "Europe/Moscow", ()),
    ("30", "Астраханская область", "Europe/Astrakhan", ()),
    ("31", "Белгородская область", "Europe/Moscow", ()),
    ("32", "Брянская область", "Europe/Moscow", ()),
    ("33", "Владимирская область", "Europe/Moscow", ()),
    ("34", "Волгоградская область", "Europe/Volgograd", ()),
    ("35", "Вологодская область", "Europe/Moscow", ()),
    ("36", "Воронежская область", "Europe/Moscow", ()),
    ("37", "Ивановская область", "Europe/Moscow", ()),
    ("38", "Иркутская область", "Asia/Irkutsk", ()),
    ("39", "Калининградская область", "Europe/Kaliningrad", ()),
    ("40", "Калужская область", "Europe/Moscow", ()),
    ("41", "Камчатский край", "Asia/Kamchatka", ("камчатка",)),
    ("42", "Кемеровская область — Кузбасс", "Asia/Novokuznetsk", ("кемеровская", "кузбасс")),
    ("43", "Кировская область", "Europe/Kirov", ()),
    ("44", "Костромская область", "Europe/Moscow", ()),
    ("45", "Курганская область", "Asia/Yekaterinburg", ()),
    ("46", "Курская область", "Europe/Moscow", ()),
    ("47", "Ленинградская область", "Europe/Moscow", ("ло",)),
    ("48", "Липецкая область", "Europe/Moscow", ()),
    ("49", "Магаданская область", "Asia/Magadan", ()),
    ("50", "Московская область", "Europe/Moscow", ("подмосковье", "мо")),
    ("51", "Мурманская область", "Europe/Moscow", ()),
    ("52", "Нижегородская область", "Europe/Moscow", ()),
    ("53", "Новгородская область", "Europe/Moscow", ()),
    ("54", "Новосибирская область", "Asia/Novosibirsk", ()),
    ("55", "Омская область", "Asia/Omsk", ()),
    ("56", "Оренбургская область", "Asia/Yekaterinburg", ()),
    ("57", "Орловская область", "Europe/Moscow", ()),
    ("58", "Пензенская область", "Europe/Moscow", ()),
    ("59", "Пермский край", "Asia/Yekaterinburg", ()),
    ("60", "Псковская область", "Europe/Moscow", ()),
    ("61", "Ростовская область", "Europe/Moscow", ()),
    ("62", "Рязанская область", "Europe/Moscow", ()),
    ("63", "Самарская область", "Europe/Samara", ()),
    ("64", "Саратовская область", "Europe/Saratov", ()),
    ("65", "Сахалинская область", "Asia/Sakhalin", ("сахалин",)),
    ("66", "Свердловская область", "Asia/Yekaterinburg", ()),
    ("67", "Смоленская область", "Europe/Moscow", ()),
    ("68", "Тамбовская область", "Europe/Moscow", ()),
    ("69", "Тверская область", "Europe/Moscow", ()),
    ("70", "Томская область", "Asia/Tomsk", ()),
    ("71", "Тульская область", "Europe/Moscow", ()),
    ("72", "Тюменская область", "Asia/Yekaterinburg", ()),
    ("73", "Ульяновская область", "Europe/Ulyanovsk", ()),
    ("74", "Челябинская область", "Asia/Yekaterinburg", ()),
    ("75", "Забайкальский край", "Asia/Chita", ("забайкалье",)),
    ("76", "Ярославская область", "Europe/Moscow", ()),
    ("77", "Москва", "Europe/Moscow", ("мск",)),
    ("78", "Санкт-Петербург", "Europe/Moscow", ("спб", "петербург", "питер", "с петербург")),
    ("79", "Еврейская автономная область", "Asia/Vladivostok", ("еао",)),
    ("83", "Ненецкий автономный округ", "Europe/Moscow", ("нао",)),
    ("86", "Ханты-Мансийский автономный округ — Югра", "Asia/Yekaterinburg",
     ("ханты мансийский", "югра", "хмао", "хмао югра")),
    ("87", "Чукотский автономный округ", "Asia/Anadyr", ("чукотка", "чао")),
    ("89", "Ямало-Ненецкий автономный округ", "Asia/Yekaterinburg", ("янао",)),
    ("90", "Запорожская область", "Europe/Moscow", ()),
    ("91", "Республика Крым", "Europe/Simferopol", ("крым",)),
    ("92", "Севастополь", "Europe/Simferopol", ()),
    ("93", "Донецкая Народная Республика", "Europe/Moscow", ("днр", "донецкая")),
    ("94", "Луганская Народная Республика", "Europe/Moscow", ("лнр", "луганская")),
    ("95", "Херсонская область", "Europe/Moscow", ()),
)

# Words that say what kind of subject it is, in full and abbreviated; they are dropped before matching,
# so "Респ. Татарстан", "Татарстан Респ" and "Республика Татарстан" meet at "татарстан".
_KIND_WORDS = frozenset({
    "республика", "респ", "область", "обл", "край", "кр", "автономный", "автономная", "авт", "округ", "ао",
    "аобл", "г", "гор", "город", "федерального", "значения", "гфз", "субъект", "рф", "россия",
})
_SEPARATORS = re.compile(r"[\s.,;:()\"«»'’/\\—–‑-]+")
_CODE = re.compile(r"\d{1,2}")
MAX_INPUT = 256


def _key(text: str) -> str:
    words = _SEPARATORS.split(text.lower().replace("ё", "е"))
    return " ".join(word for word in words if word and word not in _KIND_WORDS)


def _index() -> tuple[dict[str, Region], dict[str, Region]]:
    by_code: dict[str, Region] = {}
    by_key: dict[str, Region] = {}
    for code, name, zone, forms in _SUBJECTS:
        region = Region(code, name, zone)
        by_code[code] = region
        for form in (name, *forms):
            key = _key(form)
            if by_key.setdefault(key, region) is not region:
                raise AssertionError(f"{form!r} names two regions")
    return by_code, by_key


_BY_CODE, _BY_KEY = _index()
REGIONS: tuple[Region, ...] = tuple(_BY_CODE.values())
TIME_ZONES: tuple[str, ...] = tuple(sorted({r.time_zone for r in REGIONS if r.time_zone} | {"UTC"}))  # Russia's, for pickers


def find_region(text: str) -> Region | None:
    """The subject `text` names (a name in any usual form, a code, or an address starting with one)."""
    text = (text or "").strip()[:MAX_INPUT]
    if _CODE.fullmatch(text):
        return _BY_CODE.get(text.zfill(2))
    for part in (text, *text.split(",")):
        found = _BY_KEY.get(_key(part))
        if found is not None:
            return found
    return None


def time_zone_for_region(text: str) -> str | None:
    """The IANA zone of the region `text` names; None when unknown or when the region spans several zones."""
    region = find_region(text)
    return region.time_zone if region is not None else None
