"""A debt CSV with every kind of bad row among valid ones, shared by the import's HTTP/CLI/DB tests
and its browser test: the rows, the reason each bad line must get, and the contracts that import."""

from __future__ import annotations

import csv
import io
from datetime import date

TODAY = date(2024, 6, 1)
HOSTILE = "<script>alert(1)</script>"
HEADER = ["contract", "creditor", "debtor", "kind", "region", "phones", "principal", "total_due", "currency",
          "days_past_due", "due_date", "status", "email"]


def debt(contract: str, debtor: str = "Иванов Иван Иванович", *, region: str = "г. Москва",
         phones: str = "+7 916 123-45-67", principal: str = "1000", total: str = "1500", days: str = "30",
         due: str = "", status: str = "", kind: str = "", email: str = "",
         creditor: str = "ПАО «Банк»") -> list[str]:
    """One row's fields in HEADER's order."""
    return [contract, creditor, debtor, kind, region, phones, principal, total, "", days, due, status, email]


# line -> (the row's fields, or raw text), the reason code expected (None: imported)
BROKEN: list[tuple[list[str] | str, str | None]] = [
    (debt("K-1", phones="+7 916 123-45-67; 8 (343) 300-11-22", principal="12 500,50", total="13 000",
          days="45"), None),                                                                        # line 2
    (debt("K-2", HOSTILE, region="Свердловская обл.", phones="89161112233", total="1500.5", days="",
          due="01.03.2024"), None),                                                                 # 3
    (debt("K-3")[:-2], "field_count"),                                                              # 4
    (debt("K-4", principal="12,500.00"), "amount"),                                                 # 5
    (debt("K-5", days="", due="31.02.2024"), "no_such_date"),                                       # 6
    (debt("K-6", days="", due="2024-07-01"), "future"),                                             # 7
    (debt("K-7", phones="+7 916 123-45-67, not a phone"), "bad_phone"),                             # 8
    (debt("K-8", phones="+7 701 555-12-34"), "foreign_phone"),                                      # 9
    (debt("K-9", phones="+380 44 123 45 67"), "foreign_phone"),                                     # 10
    (debt("K-1", "Петров Пётр Петрович"), "duplicate"),                                             # 11
    (debt("K-10", status="frozen"), "status"),                                                      # 12
    (debt("K-11", principal="-100"), "negative"),                                                   # 13
    (debt("K-12", total="0"), "not_positive"),                                                      # 14
    (debt("K-13", HOSTILE, principal="сто рублей"), "amount"),                                      # 15
    (debt("K-14", "ООО «Ромашка»", kind="company", region="Приморский край",
          phones="+7 423 222-33-44"), None),                                                        # 16
    (debt("K-15", region="Москва", total="700,5"), None),                                           # 17
    ("", None),                                                                                     # 18 blank
    ("{d}" * 12, None),                                                                             # 19 empty
    (debt("K-16", "Саргылана Иванова", region="Якутия", phones="+7 914 111-22-33"), None),          # 20
    (debt("K-17", "Пётр\x01Сидоров"), "control"),                                                   # 21
    (debt("K-18", days="10", due="2024-05-01"), "days_mismatch"),                                   # 22
    ('K-19{d}"Незакрытая кавычка\nK-20{d}ПАО «Банк»', "field_count_quote"),                        # 23-24
]
VALID = {"K-1", "K-2", "K-14", "K-15", "K-16"}


def broken_csv(delimiter: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(HEADER)
    for row, _ in BROKEN:
        if isinstance(row, str):
            out.write(row.format(d=delimiter) + "\n")
        else:
            writer.writerow(row)
    return out.getvalue()


def expected_rejections(delimiter: str) -> dict[int, str]:
    found, line = {}, 2
    for _, code in BROKEN:
        if code is not None:
            found[line] = "field_count_comma" if code == "field_count" and delimiter == "," else code
        line += 1
    return found
