"""workarounds.continuity: a record Faust never delivered stops the stage before any ack."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from workarounds.continuity import Continuity, RecordSkipped, fail_on_gap


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Message:
    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class Event:
    message: Message


def events(*coords: tuple[int, int]) -> list[Event]:
    return [Event(Message("t", p, o)) for p, o in coords]


class Generation:
    def __init__(self) -> None:
        self.value = 1

    def __call__(self) -> int:
        return self.value


def test_consecutive_offsets_per_partition_pass() -> None:
    c = Continuity(fail_on_gap, Generation())
    c.check(events((0, 4), (1, 13), (0, 5)))  # type: ignore[arg-type]
    c.check(events((1, 14), (0, 6), (0, 7)))  # type: ignore[arg-type]


def test_the_drop_seen_in_the_crash_test_is_caught() -> None:
    """Partition 2 delivered 4, 5, 6, then 8: record 7 never reached the stage."""
    c = Continuity(fail_on_gap, Generation())
    c.check(events((2, 4), (1, 13)))  # type: ignore[arg-type]
    c.check(events((0, 13), (2, 5), (2, 6)))  # type: ignore[arg-type]
    with pytest.raises(RecordSkipped) as info:
        c.check(events((1, 14), (2, 8)))  # type: ignore[arg-type]
    assert (info.value.topic, info.value.partition, info.value.first, info.value.last) == (
        "t",
        2,
        7,
        7,
    )


def test_a_gap_inside_one_batch_is_caught() -> None:
    c = Continuity(fail_on_gap, Generation())
    with pytest.raises(RecordSkipped):
        c.check(events((0, 1), (0, 2), (0, 5)))  # type: ignore[arg-type]


def test_redelivery_after_a_seek_back_is_not_a_gap() -> None:
    c = Continuity(fail_on_gap, Generation())
    c.check(events((0, 10), (0, 11)))  # type: ignore[arg-type]
    c.check(events((0, 8), (0, 9), (0, 10), (0, 11), (0, 12)))  # type: ignore[arg-type]


def test_a_new_generation_starts_afresh() -> None:
    generation = Generation()
    c = Continuity(fail_on_gap, generation)
    c.check(events((0, 10)))  # type: ignore[arg-type]
    generation.value = 2  # rebalance: the partition may come back at its committed offset
    c.check(events((0, 40)))  # type: ignore[arg-type]
    with pytest.raises(RecordSkipped):
        c.check(events((0, 42)))  # type: ignore[arg-type]


def test_count_policy_reports_and_carries_on() -> None:
    seen: list[tuple[str, int, int, int]] = []
    c = Continuity(lambda *gap: seen.append(gap), Generation())
    c.check(events((3, 1), (3, 4), (3, 5)))  # type: ignore[arg-type]
    assert seen == [("t", 3, 2, 3)]


def test_the_first_record_after_a_rebalance_must_be_at_the_committed_offset():
    """A record skipped right at a rebalance: delivered 8 where the group committed 7."""
    from workarounds.continuity import Continuity, RecordSkipped

    generation = [1]
    committed = {("t", 0): 7, ("t", 1): None}
    c = Continuity(
        lambda *a: (_ for _ in ()).throw(RecordSkipped(*a)),
        lambda: generation[0],
        lambda tp: committed.get(tp),
    )
    c.check_positions(
        [("t", 0, 7), ("t", 0, 8), ("t", 1, 40)]
    )  # at the commit; unknown: as it comes
    generation[0] = 2
    committed[("t", 0)] = 9
    with pytest.raises(RecordSkipped) as err:
        c.check_positions([("t", 0, 10)])
    assert (err.value.first, err.value.last) == (9, 9)
    generation[0] = 3
    c.check_positions([("t", 0, 5), ("t", 0, 6)])  # a re-delivery below the commit is fine


def test_a_never_committed_partition_is_checked_from_its_log_start() -> None:
    """No committed offset: Faust reads from the log start, and its own commit guard is
    off there, so a head record dropped would be committed past unless checked."""
    generation = Generation()
    committed: dict[tuple[str, int], int | None] = {("t", 0): 7}
    c = Continuity(fail_on_gap, generation, committed.get)
    positions = [("t", 0, 7), ("t", 1, 5), ("t", 1, 6), ("t", 2, 0)]
    assert c.unknown(positions) == [("t", 1), ("t", 2)]
    c.start_at(("t", 1), 3)
    c.start_at(("t", 2), 0)
    with pytest.raises(RecordSkipped) as err:
        c.check_positions(positions)  # partition 1 starts at 3: 3 and 4 never came
    assert (err.value.partition, err.value.first, err.value.last) == (1, 3, 4)

    generation.value = 2  # a new generation forgets the starts it was given
    assert c.unknown([("t", 1, 3)]) == [("t", 1)]
    c.check_positions([("t", 1, 3), ("t", 1, 4)])  # unknown and not given: as it comes
    c.start_at(("t", 2), 0)
    c.check_positions([("t", 2, 0)])
    assert c.unknown([("t", 1, 5), ("t", 2, 1), ("t", 0, 7)]) == []  # all seen or committed


def test_without_a_committed_lookup_nothing_is_unknown() -> None:
    c = Continuity(fail_on_gap, Generation())
    assert c.unknown([("t", 0, 9)]) == []
    c.check_positions([("t", 0, 9), ("t", 0, 10)])


def test_a_partition_held_before_may_go_on_where_this_process_left_off() -> None:
    """Records fetched before a rebalance come after it: from where the last generation
    stopped, past a commit that lags (or is missing), and nothing was skipped."""
    generation = Generation()
    committed: dict[tuple[str, int], int | None] = {("t", 1): 2}
    c = Continuity(fail_on_gap, generation, committed.get)
    assert c.unknown([("t", 0, 0)]) == [("t", 0)]
    c.start_at(("t", 0), 0)
    c.check_positions([("t", 0, 0), ("t", 0, 1), ("t", 0, 2), ("t", 1, 2), ("t", 1, 3)])

    generation.value = 2
    assert c.unknown([("t", 0, 3)]) == [("t", 0)]
    c.start_at(("t", 0), 0)
    c.check_positions([("t", 0, 3), ("t", 1, 4)])  # 3 and 4: where each stopped
    c.check_positions([("t", 0, 0), ("t", 1, 2)])  # then from the log start / the commit

    generation.value = 3
    c.start_at(("t", 0), 0)
    with pytest.raises(RecordSkipped) as err:
        c.check_positions([("t", 0, 5)])  # 3 and 4 were delivered in 2; not 5's head
    assert (err.value.first, err.value.last) == (4, 4)


def test_a_partition_passed_unchecked_earns_no_head_start() -> None:
    generation = Generation()
    committed: dict[tuple[str, int], int | None] = {}
    c = Continuity(fail_on_gap, generation, committed.get)
    c.check_positions([("t", 0, 10), ("t", 0, 11)])  # no log start given: unchecked
    generation.value = 2
    c.start_at(("t", 0), 0)
    with pytest.raises(RecordSkipped):
        c.check_positions([("t", 0, 12)])
