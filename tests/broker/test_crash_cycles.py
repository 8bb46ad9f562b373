"""SIGKILL under load, ten times over: nothing acknowledged is lost (tests/crash_harness.py)."""
from __future__ import annotations

import pytest

from tests.crash_harness import CrashCycles

CYCLES = 10


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path):
    with CrashCycles(tmp_path / "data", seed=4) as harness:
        for _ in range(CYCLES):
            harness.run_cycle()
        report = harness.report
        print(report.summary())
        assert len(report.cycles) == CYCLES
        assert report.records_lost == 0 and report.duplicates == 0
        assert report.records_acked > CYCLES * 100, "the load was too light to mean anything"
        # the kills landed while records were being written
        assert sum(c.in_flight_at_kill > 0 for c in report.cycles) >= CYCLES // 2
        assert sum(c.commits_before_kill for c in report.cycles) > 0
