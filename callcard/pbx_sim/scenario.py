"""Demo traffic: a steady stream of inbound callers into the simulator's queues."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator

DEMO_QUEUES = ("sales", "support")
# What demo callers press in the IVR: a department, the operator, nothing (timeout) or a wrong key.
DEMO_IVR_KEYS = ("1", "2", "3", "0", "", "9")
DEMO_OPERATORS = {"op1": 101, "op2": 102, "op3": 103, "op4": 104}


def demo_config(time_scale: float = 1.0) -> PbxConfig:
    """Operators op1..op4 behind `Local/101..104@agents/n`; they let the phone ring a few seconds
    (so the caller card pops while ringing) and talk long enough to be watched."""
    member = {op: MemberConfig(f"Local/{ext}@agents/n", op) for op, ext in DEMO_OPERATORS.items()}
    agents = {
        f"Local/{ext}@agents/n": AgentBehaviour(answer_after=3.0 + i, talk=12.0 + 4 * i)
        for i, ext in enumerate(DEMO_OPERATORS.values())
    }
    return PbxConfig(
        queues=(
            QueueConfig("sales", (member["op1"], member["op2"])),
            QueueConfig("support", (member["op3"], member["op4"]), strategy="ringall"),
            QueueConfig("collections", tuple(member.values())),
        ),
        agents=agents,
        time_scale=time_scale,
    )


@dataclass(frozen=True)
class PlannedCall:
    number: str
    name: str
    queue: str
    patience: float


def plan_call(rng: random.Random, callers: Sequence[tuple[str, str]], queues: Sequence[str]) -> PlannedCall:
    """One in five callers is unknown to the CRM and about one in seven gives up before an answer."""
    if callers and rng.random() >= 0.2:
        number, name = rng.choice(list(callers))
    else:
        number, name = "8351" + "".join(rng.choice("0123456789") for _ in range(7)), ""
    patience = rng.uniform(2.0, 4.0) if rng.random() < 0.15 else rng.uniform(90.0, 180.0)
    return PlannedCall(number, name, rng.choice(list(queues)), round(patience, 1))


async def run_demo_traffic(sim: PbxSimulator, interval: float, rng: random.Random,
                           callers: Sequence[tuple[str, str]],
                           queues: Sequence[str] = DEMO_QUEUES, ivr_share: float = 0.0) -> None:
    """Place an inbound call every `interval` real seconds until cancelled; `ivr_share` of them
    go through the FastAGI IVR first, pressing one of DEMO_IVR_KEYS."""
    targets = [q for q in queues if q in sim.queue_names()] or sim.queue_names()
    while True:
        plan = plan_call(rng, callers, targets)
        ivr = ivr_share > 0 and rng.random() < ivr_share
        await sim.place_call(plan.number, plan.name, queue=plan.queue, patience=plan.patience, ivr=ivr,
                             dtmf=rng.choice(DEMO_IVR_KEYS) if ivr else "")
        await asyncio.sleep(interval)
