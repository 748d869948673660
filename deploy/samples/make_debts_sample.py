"""Write deploy/samples/debts_sample.csv: 200 debts as a creditor's Excel export would have them.

Russian names, +7 numbers of eleven regions written the ways people write them, amounts with
decimal commas and thousands spaces, days past due or a due date, a few debtors with two
contracts, and the deliberately bad rows listed in BAD (README, "Debt import"). Deterministic:
running it again writes the same file. `python deploy/samples/make_debts_sample.py`
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "debts_sample.csv"
ROWS = 200
HEADER = ("contract;creditor;debtor;kind;region;phones;principal;total_due;currency;days_past_due;due_date;"
          "status;email")

# (how the region is written, landline area code): the spellings vary on purpose.
REGIONS = [
    ("г. Москва", "495"), ("Москва", "499"), ("Санкт-Петербург", "812"), ("Свердловская обл.", "343"),
    ("66", "343"), ("Новосибирская область", "383"), ("Приморский край", "423"), ("Респ. Татарстан", "843"),
    ("Краснодарский край", "861"), ("Самарская обл", "846"), ("Иркутская обл.", "3952"),
    ("Хабаровский край", "4212"), ("Калининградская обл.", "4012"), ("Омская область", "3812"),
]
CREDITORS = ["ПАО «Банк Восход»", "ООО МФК «Быстроденьги-Плюс»", "АО «Северный кредит»", "ООО «Энергосбыт»"]
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
            "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов",
            "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров"]
MEN = [("Александр", "Александрович"), ("Дмитрий", "Дмитриевич"), ("Сергей", "Сергеевич"),
       ("Андрей", "Андреевич"), ("Алексей", "Алексеевич"), ("Михаил", "Михайлович"), ("Иван", "Иванович")]
WOMEN = [("Елена", "Александровна"), ("Ольга", "Сергеевна"), ("Наталья", "Викторовна"),
         ("Татьяна", "Игоревна"), ("Анна", "Дмитриевна"), ("Мария", "Андреевна"), ("Ирина", "Петровна")]
COMPANIES = ["ООО «Ромашка»", "ИП Громов Пётр Ильич", "ООО «СтройМонтаж-Урал»", "АО «Дальтранс»"]

# Line number (the header is line 1) -> (what is wrong, how the row is spoiled).
BAD = {
    12: "wrong column count (a field is missing)",
    27: "amount written as 12,500.00",
    41: "due date 31.02.2024 does not exist",
    58: "due date in the future (01.01.2099)",
    73: "phone is garbage (12345)",
    89: "a Kazakhstan number (+7 701 …)",
    104: "duplicate contract (the one on line 20)",
    131: "unknown status (frozen)",
    157: "negative principal",
    176: "a Ukrainian number among good ones (+380 …)",
}
WARNED = {190: "region nobody knows (Тридевятое царство): local time will come from the number"}


def _person(rnd: random.Random) -> str:
    surname = rnd.choice(SURNAMES)
    if rnd.random() < 0.5:
        first, middle = rnd.choice(MEN)
        return f"{surname} {first} {middle}"
    first, middle = rnd.choice(WOMEN)
    return f"{surname}а {first} {middle}"


def _mobile(rnd: random.Random) -> str:
    operator = rnd.choice(["01", "03", "05", "12", "16", "26", "50", "64", "77", "85", "99"])
    digits = f"9{operator}{rnd.randrange(10**7):07d}"
    style = rnd.randrange(3)
    if style == 0:
        return f"+7 {digits[:3]} {digits[3:6]}-{digits[6:8]}-{digits[8:]}"
    if style == 1:
        return f"8{digits}"
    return f"8 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}"


def _landline(rnd: random.Random, code: str) -> str:
    rest = f"{rnd.randrange(2, 10)}{rnd.randrange(10 ** (9 - len(code))):0{9 - len(code)}d}"
    return f"8 ({code}) {rest}"


def _amount(value: float, rnd: random.Random) -> str:
    whole, cents = f"{value:.2f}".split(".")
    style = rnd.randrange(3)
    if style == 0:
        return f"{int(whole):,}".replace(",", " ") + f",{cents}"
    if style == 1:
        return f"{whole}.{cents}"
    return whole


def rows(rnd: random.Random) -> list[str]:
    out: list[str] = []
    debtors: list[tuple[str, str, str]] = []  # (name, region, phones) for second contracts
    for n in range(ROWS):
        line = n + 2
        if debtors and rnd.random() < 0.08:
            name, region, phones = rnd.choice(debtors)
            kind = ""
        else:
            company = rnd.random() < 0.05
            name = rnd.choice(COMPANIES) if company else _person(rnd)
            region, code = rnd.choice(REGIONS)
            numbers = [_mobile(rnd)] + ([_landline(rnd, code)] if rnd.random() < 0.3 else [])
            phones = ", ".join(numbers)
            kind = "company" if company else rnd.choice(["", "", "person"])
            debtors.append((name, region, phones))
        principal = round(rnd.uniform(3_000, 450_000), 2)
        total = round(principal * rnd.uniform(1.0, 1.6), 2)
        days = rnd.randrange(1, 720)
        due = "" if rnd.random() < 0.6 else (date(2025, 6, 30) - timedelta(days=days)).strftime("%d.%m.%Y")
        fields = [f"КД-{2023 + n % 3}/{10000 + n * 7}", rnd.choice(CREDITORS), name, kind, region, phones,
                  _amount(principal, rnd), _amount(total, rnd), "", "" if due else str(days), due,
                  rnd.choice(["", "", "", "active", "disputed"]), ""]
        fields = _spoil(line, fields, out)
        out.append(";".join(f'"{f}"' if (";" in f or '"' in f) else f for f in fields))
    return out


def _spoil(line: int, fields: list[str], before: list[str]) -> list[str]:
    if line == 12:
        return fields[:-1]
    if line == 27:
        fields[6] = "12,500.00"
    elif line == 41:
        fields[9], fields[10] = "", "31.02.2024"
    elif line == 58:
        fields[9], fields[10] = "", "01.01.2099"
    elif line == 73:
        fields[5] = "12345"
    elif line == 89:
        fields[5] = "+7 701 555-12-34"
    elif line == 104:
        fields[0] = before[20 - 2].split(";")[0]
    elif line == 131:
        fields[11] = "frozen"
    elif line == 157:
        fields[6] = "-" + fields[6]
    elif line == 176:
        fields[5] = fields[5] + ", +380 44 123-45-67"
    elif line == 190:
        fields[4] = "Тридевятое царство"
    return fields


def main() -> None:
    lines = [HEADER, *rows(random.Random(2024))]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    print(f"{OUT}: {len(lines) - 1} rows, bad on lines {', '.join(map(str, BAD))}")


if __name__ == "__main__":
    main()
