"""What the wiring hands every stage: one small object instead of a long parameter list."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import faust

from agents.checkpoint import Sender
from agents.metrics import Metrics
from workarounds.continuity import GapProbe, OnGap, fail_on_gap

log = logging.getLogger(__name__)


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
    #: events a stage decides before it commits, at a pack boundary (0: one commit per
    #: take): a backlog's takes of full packs commit in steps, so outputs flow steadily
    batch_events: int = 0
    #: per stage ("decide", "circular"): its own transactional sender (exactly_once)
    stage_senders: Mapping[str, Sender] = field(default_factory=dict)
    #: checks a never-committed partition's first record against its log start, and
    #: (exactly_once) reads each counted gap back: a record Faust dropped fails the batch
    gap_probe: GapProbe | None = None

    def sender_for(self, stage: str) -> Sender:
        return self.stage_senders.get(stage, self.sender)

    def on_gap(self) -> OnGap:
        """A jump in an internal topic's offsets: a skipped record (fail-stop), except
        with transactions, where every commit leaves a marker offset no record has:
        counted, and read back by ``gap_probe``."""
        if not self.stage_senders:
            return fail_on_gap
        gaps = self.metrics.input_offset_gaps

        def count(topic: str, partition: int, first: int, last: int) -> None:
            gaps.labels(topic=topic).inc(last - first + 1)

        return count
