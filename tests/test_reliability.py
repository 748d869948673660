"""No call lost, none logged twice, every outcome right, through kill -9 of the leading bridge, an
AMI drop, a Redis restart, a database outage and kill -9 of the call logger during it: real
processes, real Redis (a throwaway server) and PostgreSQL (behind a relay the test cuts). See
tests/reliability_rig.py; the 10,000-call run is bench/reliability.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_rig import Plan, Rig

from crm_core.migrate import upgrade

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


async def test_every_call_is_logged_exactly_once_through_every_fault(db_url: str, tmp_path: Path) -> None:
    assert shutil.which("redis-server"), "redis-server is needed for the throwaway Redis"
    upgrade(db_url)
    rig = Rig(Plan(calls=240, rate=8.0, leader_ttl=2.0, db_outage=5.0), db_url, tmp_path)
    report = await rig.run()
    print("\n".join(report.lines()))
    assert report.placed == 240
    assert (report.missing, report.unknown, report.unfinished, report.duplicated) == ([], [], [], 0)
    assert report.other_outcome == []
    assert report.stream_unacknowledged == 0
    assert report.bridge_terms >= 2  # the kill -9 made a second term at least
    assert report.takeover_seconds < 2.0 + 1.5  # about the lease TTL
