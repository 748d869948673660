"""PBX simulator: real AMI over TCP with the behaviour of the recorded Asterisk 22 (see ../shared/ami-traces)."""

from callcard.pbx_sim.model import (
    AgentBehaviour,
    CustomerModel,
    MemberConfig,
    PbxConfig,
    QueueConfig,
    default_config,
)
from callcard.pbx_sim.server import PbxSimulator

__all__ = [
    "AgentBehaviour", "CustomerModel", "MemberConfig", "PbxConfig", "PbxSimulator", "QueueConfig", "default_config",
]
