"""What the networks service's handlers share: the runtime's handles, its settings, the
ambassadors it knows and the pool the matching chooses from."""

from __future__ import annotations

from dataclasses import dataclass

from services.networks.candidates import CandidatePool
from services.networks.fatigue import FatigueCache
from services.networks.settings import NetworksSettings
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.service import Service


@dataclass
class Context:
    service: Service
    settings: NetworksSettings
    # The runtime's read model of ambassadors (service.follow_ambassadors()).
    ambassadors: KnownAmbassadors
    # The same ambassadors as the matching's arrays, kept in step with the read model.
    pool: CandidatePool
    # How much each has been asked lately (the matching's fatigue).
    fatigue: FatigueCache
