"""Replay marks: a feed message finished once is recognised when it comes again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rewards.progress import Progress, parse_source


def test_parse_source_keeps_topic_dots_and_partition():
    assert parse_source("upi.transactions:3:1042") == ("upi.transactions:3", 1042)


def test_finished_offsets_and_below_are_replays_per_feed_partition():
    marks = Progress()
    assert not marks.done("upi.transactions:0:5")
    marks.finish("upi.transactions:0:5")
    assert marks.done("upi.transactions:0:5")
    assert marks.done("upi.transactions:0:4")
    assert not marks.done("upi.transactions:0:6")
    assert not marks.done("upi.transactions:1:0")  # another feed partition


def test_marks_survive_a_round_trip_and_only_move_forward():
    marks = Progress()
    marks.finish("t:0:9")
    marks.finish("t:0:3")  # an older offset never lowers the mark
    restored = Progress(marks.dump())
    assert restored.marks == {"t:0": 9}
    assert not restored.changed
    restored.finish("t:0:9")
    assert not restored.changed  # nothing new to write


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1000)), max_size=50))
def test_done_means_some_offset_at_or_above_was_finished(finished):
    marks = Progress()
    for partition, offset in finished:
        marks.finish(f"t:{partition}:{offset}")
    for partition in range(4):
        for offset in (0, 500, 1000):
            expect = any(p == partition and o >= offset for p, o in finished)
            assert marks.done(f"t:{partition}:{offset}") == expect
