"""bench/dialler.py keeps working: a one-minute campaign per mode over the simulator prints both lines,
and the progressive mode never abandons an answered debtor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "dialler.py"


def test_dialler_bench_reports_occupancy_and_abandons_for_both_modes() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--agents", "4", "--minutes", "1.5", "--warmup", "0.5",
                          "--scale", "30", "--talk", "20", "--talk-sd", "8", "--debts", "300"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = dict(re.findall(r"^(progressive|predictive)\s+occupancy\s+([\d.]+) %.*$", out, re.M))
    assert set(rows) == {"progressive", "predictive"}, out
    assert all(0.0 < float(v) <= 100.0 for v in rows.values()), out
    assert re.search(r"^progressive .*abandon\s+0\.0 %", out, re.M), out
