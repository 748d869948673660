"""how_many_to_dial(): modes, bounds and the abandon back-off; the seeded campaign model behind them."""

from __future__ import annotations

import pytest

from routing.pacing import (
    PREDICTIVE,
    PREVIEW,
    PROGRESSIVE,
    DialStats,
    how_many_to_dial,
    simulate_campaign,
    soon_free,
)


@pytest.mark.parametrize("mode", [PREVIEW, PROGRESSIVE, PREDICTIVE])
def test_no_free_or_soon_free_agent_dials_nothing(mode: str) -> None:
    stats = DialStats(mode, free_agents=0, soon_free_agents=0, answer_rate=0.2, max_lines=100)
    assert how_many_to_dial(stats) == 0


def test_preview_never_dials_by_itself() -> None:
    assert how_many_to_dial(DialStats(PREVIEW, free_agents=5, answer_rate=0.3)) == 0


@pytest.mark.parametrize(("stats", "expected"), [
    pytest.param(DialStats(PROGRESSIVE, free_agents=4), 4, id="one-line-per-free-agent"),
    pytest.param(DialStats(PROGRESSIVE, free_agents=4, soon_free_agents=6), 4, id="soon-free-not-counted"),
    pytest.param(DialStats(PROGRESSIVE, free_agents=4, pending_calls=3, lines_in_use=3), 1,
                 id="ringing-lines-already-serve-agents"),
    pytest.param(DialStats(PROGRESSIVE, free_agents=4, pending_calls=6, lines_in_use=6), 0,
                 id="more-ringing-than-free"),
    pytest.param(DialStats(PROGRESSIVE, free_agents=12, max_lines=10), 10, id="bounded-by-max-lines"),
    pytest.param(DialStats(PROGRESSIVE, free_agents=4, lines_in_use=28, max_lines=30), 2,
                 id="bounded-by-free-lines"),
    pytest.param(DialStats(PROGRESSIVE, free_agents=4, lines_in_use=31, max_lines=30), 0,
                 id="over-allowance-dials-nothing"),
])
def test_progressive_dials_one_line_per_free_agent(stats: DialStats, expected: int) -> None:
    assert how_many_to_dial(stats) == expected


@pytest.mark.parametrize(("answer_rate", "expected"), [
    (0.2, 36),
    (0.3, 25),
    (0.5, 16),
    (0.8, 11),
    (1.0, 10),  # everybody answers: no over-dial at all
])
def test_predictive_over_dials_more_at_low_answer_rates(answer_rate: float, expected: int) -> None:
    stats = DialStats(PREDICTIVE, free_agents=10, answer_rate=answer_rate, max_lines=100)
    assert how_many_to_dial(stats) == expected


@pytest.mark.parametrize(("stats", "expected"), [
    pytest.param(DialStats(PREDICTIVE, free_agents=10, answer_rate=0.2, max_lines=30, lines_in_use=20), 10,
                 id="bounded-by-free-lines"),
    pytest.param(DialStats(PREDICTIVE, free_agents=10, answer_rate=0.2, max_lines=100, pending_calls=20,
                           lines_in_use=20), 16, id="ringing-lines-count"),
    pytest.param(DialStats(PREDICTIVE, free_agents=0, soon_free_agents=10, answer_rate=0.3, max_lines=100), 6,
                 id="dials-ahead-for-soon-free-agents"),
    pytest.param(DialStats(PREDICTIVE, free_agents=0, soon_free_agents=3, answer_rate=0.3), 0,
                 id="three-soon-free-agents-too-uncertain"),
    pytest.param(DialStats(PREDICTIVE, free_agents=4, answer_rate=0.0), 4, id="answer-rate-unknown-progressive"),
])
def test_predictive_bounds(stats: DialStats, expected: int) -> None:
    assert how_many_to_dial(stats) == expected


@pytest.mark.parametrize(("abandon_rate", "expected"), [
    (0.0, 25),
    (0.0249, 25),
    (0.025, 10),  # cap 3 % minus the 0.5-point margin: back to progressive
    (0.03, 10),
    (0.08, 10),
])
def test_predictive_backs_off_to_progressive_near_the_abandon_cap(abandon_rate: float, expected: int) -> None:
    stats = DialStats(PREDICTIVE, free_agents=10, answer_rate=0.3, max_lines=100, abandon_rate=abandon_rate)
    assert how_many_to_dial(stats) == expected


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="power"):
        how_many_to_dial(DialStats("power", free_agents=1))


HANDLE_TIMES = [60.0, 90.0, 100.0, 110.0, 120.0, 200.0]


@pytest.mark.parametrize(("elapsed", "expected"), [
    pytest.param([95.0], 1, id="two-of-four-longer-calls-end-within-20s"),
    pytest.param([50.0], 0, id="one-of-six-ends-within-20s"),
    pytest.param([150.0], 0, id="the-only-longer-call-ran-to-200s"),
    pytest.param([250.0], 0, id="longer-than-any-call-seen"),
    pytest.param([95.0, 105.0, 50.0], 2, id="counts-each-agent"),
])
def test_soon_free_agents_judged_by_recent_handle_times(elapsed: list[float], expected: int) -> None:
    assert soon_free(elapsed, HANDLE_TIMES, ring_time=20.0) == expected


def test_no_agent_is_soon_free_before_any_call_ended() -> None:
    assert soon_free([500.0], [], ring_time=20.0) == 0


CAMPAIGN = dict(agents=30, answer_prob=0.4, talk_mean=180.0, talk_sd=60.0, ring_time=20.0, seconds=2 * 3600,
                max_lines=100)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_predictive_keeps_agents_busier_than_progressive_within_the_abandon_cap(seed: int) -> None:
    predictive = simulate_campaign(PREDICTIVE, seed=seed, **CAMPAIGN)
    progressive = simulate_campaign(PROGRESSIVE, seed=seed, **CAMPAIGN)
    assert predictive.occupancy >= 0.85
    assert predictive.abandon_rate <= 0.03
    assert progressive.abandoned == 0
    assert progressive.occupancy <= predictive.occupancy - 0.04


def test_simulation_is_deterministic_for_a_seed() -> None:
    assert simulate_campaign(PREDICTIVE, seed=7, **CAMPAIGN) == simulate_campaign(PREDICTIVE, seed=7, **CAMPAIGN)
