"""Outbound pacing: `how_many_to_dial(stats) -> int`, and a seeded model of a campaign to check it.

Predictive dialling buys agent occupancy with abandoned calls: a debtor who answers when no
agent is free hears silence. The cap is 3 % of live-answered calls per campaign over 30 days
(the US Telemarketing Sales Rule, 16 CFR 310.4(b)(4)(i); Ofcom's persistent-misuse policy uses
the same figure), so the predictive mode dials only as many lines as keep the expected abandons
of this round under the cap, and the whole campaign falls back to progressive dialling as its
rolling 30-day abandon rate comes near the cap. Compliance (`routing.compliance.may_call`)
decides *whom* to call; pacing only decides *how many*.
"""

from __future__ import annotations

import random
from bisect import bisect_right, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import comb

PREVIEW = "preview"  # the agent looks at the card and asks for the call: nothing automatic
PROGRESSIVE = "progressive"  # one line per free agent: never an abandon
PREDICTIVE = "predictive"  # over-dial by the answer rate, within the abandon budget
MODES = (PREVIEW, PROGRESSIVE, PREDICTIVE)

ABANDON_CAP = 0.03
BACKOFF_MARGIN = 0.005
SOON_FREE_CHANCE = 0.5  # a soon-free agent's call ends within a ring at least this often


@dataclass(frozen=True)
class DialStats:
    """What the dialler measures at one pacing round; rates are fractions (0.03 = 3 %)."""

    mode: str
    free_agents: int
    soon_free_agents: int = 0  # see `soon_free`
    pending_calls: int = 0  # dialled and still ringing: they may yet take an agent
    lines_in_use: int = 0  # trunk lines busy now, ringing and connected
    max_lines: int = 30  # the campaign's trunk allowance
    answer_rate: float = 0.0  # live answers / dials, measured; 0 while unknown
    abandon_rate: float = 0.0  # abandoned / live-answered, the campaign's rolling 30 days
    abandon_cap: float = ABANDON_CAP
    backoff_margin: float = BACKOFF_MARGIN  # progressive from cap - margin on


def how_many_to_dial(stats: DialStats) -> int:
    """New calls to place now; 0 at once when no agent is free or about to be.

    Progressive keeps one ringing line per free agent. Predictive adds lines while the expected
    abandons of everything ringing stay under cap - margin, which over-dials more the lower the
    answer rate; without a measured answer rate or near the cap it dials progressively.
    """
    if stats.mode not in MODES:
        raise ValueError(f"dialling mode {stats.mode!r} is not one of {MODES}")
    agents = stats.free_agents + stats.soon_free_agents
    if stats.mode == PREVIEW or agents <= 0:
        return 0
    room = max(0, stats.max_lines - stats.lines_in_use)
    if stats.mode == PROGRESSIVE or not _predictive_is_safe(stats):
        return max(0, min(stats.free_agents - stats.pending_calls, room))
    lines = stats.pending_calls
    target = stats.abandon_cap - stats.backoff_margin
    while lines - stats.pending_calls < room and _abandon_share(
            lines + 1, stats.answer_rate, stats.free_agents, stats.soon_free_agents) <= target:
        lines += 1
    return lines - stats.pending_calls


def _predictive_is_safe(stats: DialStats) -> bool:
    """Predictive needs a measured answer rate and room under the campaign's abandon cap."""
    return 0.0 < stats.answer_rate and stats.abandon_rate < stats.abandon_cap - stats.backoff_margin


def _abandon_share(lines: int, answer_rate: float, free: int, soon: int) -> float:
    """Expected abandons / expected answers when `lines` calls ring for the agents.

    Answers are Binomial(lines, answer_rate); agents are the free ones plus each soon-free one
    with probability SOON_FREE_CHANCE; every answer beyond the agents is abandoned.
    """
    if lines <= free:
        return 0.0
    answers = _binomial(lines, answer_rate)
    agents = _binomial(soon, SOON_FREE_CHANCE)
    excess = sum(p_agents * p_answers * max(0, k - free - j)
                 for j, p_agents in enumerate(agents) for k, p_answers in enumerate(answers))
    return excess / (lines * answer_rate)


def _binomial(n: int, p: float) -> list[float]:
    """P(k) for k = 0..n successes."""
    return [comb(n, k) * p ** k * (1.0 - p) ** (n - k) for k in range(n + 1)]


def soon_free(elapsed_talk: Iterable[float], handle_times: Sequence[float], ring_time: float) -> int:
    """Busy agents whose call ends within a ring at least half the time, judged by recent calls.

    `handle_times` are recent completed handle times, sorted. The average alone cannot say it: with
    an AHT of 120 s, a call at 110 s usually has much more than 10 s left.
    """
    count = 0
    for elapsed in elapsed_talk:
        done = bisect_right(handle_times, elapsed)
        longer = len(handle_times) - done
        ending = bisect_right(handle_times, elapsed + ring_time) - done
        count += longer > 0 and ending >= SOON_FREE_CHANCE * longer
    return count


@dataclass(frozen=True)
class SimResult:
    dials: int
    answered: int  # live answers, abandoned ones included
    abandoned: int
    occupancy: float  # talk time / (agents x duration)
    abandon_rate: float  # abandoned / answered


def simulate_campaign(mode: str, *, agents: int, answer_prob: float, talk_mean: float, talk_sd: float,
                      ring_time: float, seconds: int, max_lines: int, seed: int) -> SimResult:
    """One campaign in 1-second rounds, deterministic for a seed.

    Talk times are gamma-distributed; an answered call picks up at a uniform point of the
    ring, an unanswered one gives up after `ring_time`; an answer with no free agent is
    abandoned at once. The dialler sees only what a real one measures: the answer rate and
    handle times so far, its own abandon rate, free agents and how long the busy ones have talked.
    """
    rng = random.Random(seed)
    shape, scale = (talk_mean / talk_sd) ** 2, talk_sd ** 2 / talk_mean
    busy_until = [0.0] * agents
    talk_start = [0.0] * agents
    ringing: list[tuple[float, bool]] = []  # (resolves at, answered)
    talking: list[tuple[float, float]] = []  # (ends at, talk time) of calls still going on
    finished_talk: list[float] = []  # sorted talk times of ended calls: all the dialler can know of them
    dials = answered = abandoned = resolved = 0
    talk_total = 0.0
    for now in range(seconds):
        for ends, talk in talking:
            if ends <= now:
                insort(finished_talk, talk)
        talking = [call for call in talking if call[0] > now]
        for call in [call for call in ringing if call[0] <= now]:
            ringing.remove(call)
            resolved += 1
            if not call[1]:
                continue
            answered += 1
            free = [a for a in range(agents) if busy_until[a] <= now]
            if not free:
                abandoned += 1
                continue
            talk = rng.gammavariate(shape, scale)
            talk_start[free[0]], busy_until[free[0]] = now, now + talk
            talking.append((now + talk, talk))
            talk_total += min(talk, seconds - now)
        busy = [a for a in range(agents) if busy_until[a] > now]
        stats = DialStats(
            mode=mode,
            free_agents=agents - len(busy),
            soon_free_agents=soon_free((now - talk_start[a] for a in busy), finished_talk, ring_time),
            pending_calls=len(ringing),
            lines_in_use=len(ringing) + len(busy),
            max_lines=max_lines,
            answer_rate=answered / resolved if resolved >= 30 else 0.0,
            abandon_rate=abandoned / answered if answered else 0.0,
        )
        for _ in range(how_many_to_dial(stats)):
            dials += 1
            live = rng.random() < answer_prob
            ringing.append((now + (rng.uniform(0.2, 1.0) * ring_time if live else ring_time), live))
    return SimResult(dials, answered, abandoned, talk_total / (agents * seconds),
                     abandoned / answered if answered else 0.0)
