"""What the wiring hands every stage: one small object instead of a long parameter list."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from agents.checkpoint import Sender
from agents.metrics import Metrics


@dataclass(frozen=True)
class StageTopics:
    """The topics the stages write, by role (names from ``topologies.topics``)."""

    #: decide's input, where the edge routes payments and circular sends its flags
    by_payer: str
    grants: str
    decisions: str
    alerts: str
    dead_letters: str


@dataclass(frozen=True)
class StageContext:
    """Shared by the stateful stages of one worker."""

    app: faust.App  # the agents and tables hang off it
    sender: Sender
    metrics: Metrics
    topics: StageTopics
    #: partitions of the internal topics (the same for by-payer and by-pair)
    partitions: int
    #: packs per batch, and how long a batch may wait to fill
    batch_max: int
    within_s: float
