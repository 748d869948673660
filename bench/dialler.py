"""Outbound campaign over the PBX simulator: agent occupancy and abandon rate, progressive vs predictive.

The real dialler (routing.campaigns.service.DiallerService) runs against the real bridge and the
simulator over AMI, on an SQLite file; debtors follow a seeded CustomerModel (answer probability,
ring time, gamma talk time), operators answer in 0.5 s and never hang up first. Time is the
simulator's, sped up `--scale` times, so half an hour of campaign takes a minute or two.

Occupancy = operators' talk time / (operators x measured time), after a warm-up in which the
predictive mode measures the answer rate; wrap-up is 0 (no dispositions in a benchmark).
Abandon rate = answered debtors nobody took / answered debtors. Goal: predictive >= 85 %
occupancy at <= 3 % abandon, with progressive (never an abandon) shown beside it.

    .venv/bin/python bench/dialler.py [--agents 10] [--minutes 30] [--scale 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ami_bridge.events import CallEventKind, Outcome  # noqa: E402
from ami_bridge.service import Bridge  # noqa: E402
from callcard.bus import CALLS_TOPIC, MemoryBus  # noqa: E402
from callcard.pbx_sim import AgentBehaviour, CustomerModel, MemberConfig, PbxConfig, PbxSimulator, QueueConfig  # noqa: E402
from callcard.settings import Settings  # noqa: E402
from crm_core.db import make_engine, make_sessionmaker  # noqa: E402
from crm_core.models import Client, ClientPhone, Debt, Operator, Phone  # noqa: E402
from crm_core.tables import Base  # noqa: E402
from routing.campaigns.models import Campaign, CampaignOperator  # noqa: E402
from routing.campaigns.service import DiallerService  # noqa: E402

LAWFUL_NOON = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # Tuesday, 12:00 in Moscow


@dataclass
class Tally:
    warmup: float
    end: float
    talk_since: dict[str, float] = field(default_factory=dict)  # linkedid -> operator's answer
    talk: float = 0.0
    answered: int = 0
    abandoned: int = 0
    dials: int = 0

    def window(self, start: float, stop: float) -> float:
        return max(0.0, min(stop, self.end) - max(start, self.warmup))


def _build(path: Path, agents: int, debts: int) -> object:
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        campaign = Campaign(name="bench", status="running", mode="progressive", caller_id="+74950000000",
                            max_lines=agents * 4, ring_seconds=25)
        s.add(campaign)
        ops = [Operator(login=f"op{101 + i}", name=f"Operator {101 + i}", password_hash="!",
                        interface=f"Local/{101 + i}@agents") for i in range(agents)]
        s.add_all(ops)
        s.flush()
        for op in ops:
            s.add(CampaignOperator(campaign_id=campaign.id, operator_id=op.id, ready=True))
        for n in range(debts):
            client = Client(name=f"Должник {n}", time_zone="Europe/Moscow", debt_open=True)
            client.phone_links.append(ClientPhone(phone=Phone(e164=f"+7916{n:07d}", kind="mobile")))
            s.add(Debt(client=client, creditor="Банк", contract=f"B-{n}", principal=Decimal(1000),
                       total_due=Decimal(1200), days_past_due=60))
    return sessions


async def run_mode(mode: str, args: argparse.Namespace) -> Tally:
    with tempfile.TemporaryDirectory() as tmp:
        sessions = _build(Path(tmp) / "bench.db", args.agents, args.debts)
        with sessions.begin() as s:  # type: ignore[attr-defined]
            s.query(Campaign).update({"mode": mode})
        members = tuple(MemberConfig(f"Local/{101 + i}@agents/n", f"Operator {101 + i}") for i in range(args.agents))
        config = PbxConfig(
            queues=(QueueConfig("collections", members),),
            agents={m.interface: AgentBehaviour(0.5, 1e9) for m in members},
            time_scale=args.scale,
            customers=CustomerModel(args.answer, args.talk, args.talk_sd, 3.0, 15.0, seed=args.seed),
        )
        sim = PbxSimulator(config)
        await sim.start("127.0.0.1", 0)
        bus = MemoryBus()
        stop = asyncio.Event()
        bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=5.0), bus, clock=sim.now)
        events = await bus.subscribe(CALLS_TOPIC)
        tasks = [asyncio.create_task(bridge.run(stop))]
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        start = sim.now()
        tally = Tally(warmup=start + args.warmup * 60, end=start + args.minutes * 60)
        service = DiallerService(sessions, bus, bridge.commands, clock=lambda: LAWFUL_NOON,  # type: ignore[arg-type]
                                 wrapup_seconds=0.0, tick=0.05, monotonic=sim.now)
        tasks.append(asyncio.create_task(service.run(stop)))

        async def count() -> None:
            async for event in events:
                kind, at, linkedid = event["kind"], event["at"], event["linkedid"]
                if not linkedid.startswith("dial-"):
                    continue
                if kind == CallEventKind.OFFERED and at >= tally.warmup:
                    tally.dials += 1
                elif kind == CallEventKind.ANSWERED and event["interface"]:
                    tally.talk_since[linkedid] = at
                elif kind == CallEventKind.ENDED:
                    since = tally.talk_since.pop(linkedid, None)
                    if since is not None:
                        tally.talk += tally.window(since, at)
                    if at >= tally.warmup and event["outcome"] in (Outcome.ANSWERED, Outcome.ABANDONED):
                        tally.answered += 1
                        tally.abandoned += event["outcome"] == Outcome.ABANDONED

        counter = asyncio.create_task(count())
        while sim.now() < tally.end:
            await asyncio.sleep(0.5)
        for since in tally.talk_since.values():  # still talking at the end
            tally.talk += tally.window(since, tally.end)
        stop.set()
        counter.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sim.stop()
        return tally


def report(mode: str, tally: Tally, args: argparse.Namespace) -> str:
    measured = (args.minutes - args.warmup) * 60
    occupancy = tally.talk / (args.agents * measured)
    abandon = tally.abandoned / tally.answered if tally.answered else 0.0
    return (f"{mode:<12} occupancy {occupancy * 100:5.1f} %   abandon {abandon * 100:4.1f} % "
            f"({tally.abandoned}/{tally.answered} answered)   dials {tally.dials}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated campaign length")
    parser.add_argument("--warmup", type=float, default=5.0, help="simulated minutes not measured")
    parser.add_argument("--scale", type=float, default=20.0, help="simulator speed-up")
    parser.add_argument("--answer", type=float, default=0.3, help="debtors' answer probability")
    parser.add_argument("--talk", type=float, default=90.0, help="mean talk time, s")
    parser.add_argument("--talk-sd", type=float, default=45.0)
    parser.add_argument("--debts", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.agents} operators, answer p={args.answer}, talk {args.talk}±{args.talk_sd} s, "
          f"{args.minutes} simulated min ({args.warmup} warm-up) at {args.scale}x")
    for mode in ("progressive", "predictive"):
        print(report(mode, await run_mode(mode, args), args), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
