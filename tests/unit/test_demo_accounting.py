"""The demo's books (tools/demo.py): every message once, repeats told apart from new ones."""

from __future__ import annotations

from collections import Counter

from tools.demo import account, expected_decisions

A, B = ("a@x", "T1"), ("b@y", "T2")


def test_no_repeat_every_message_decided_once_is_accounted_for():
    books = account(
        3,
        Counter({A: 1, B: 1}),
        {A: Counter({b"g": 1}), B: Counter({b"n": 1})},
        Counter({("feed", 0, 2): 1}),
    )
    assert (books.decided, books.dead, books.missing, books.repeated) == (2, 1, 0, 0)
    assert books.ok(reexecutions=0)


def test_exact_copies_count_once_and_pass_only_after_a_reexecution():
    got = {A: Counter({b"g": 3}), B: Counter({b"n": 1})}
    books = account(3, Counter({A: 1, B: 1}), got, Counter({("feed", 0, 2): 2}))
    assert (books.decided, books.dead, books.repeated) == (2, 1, 3)
    assert books.ok(reexecutions=1)
    assert not books.ok(reexecutions=0)  # with no restart a repeat is a defect


def test_a_resend_has_its_own_decision_and_a_missing_one_is_not_covered_by_a_copy():
    want = Counter({A: 2})  # the message and its resend
    books = account(2, want, {A: Counter({b"granted": 2})}, Counter())
    assert books.missing == 0 and books.other_stories == 0  # could be copies: counted
    books = account(2, want, {A: Counter({b"granted": 1})}, Counter())
    assert books.missing == 1 and not books.ok(reexecutions=1)


def test_a_second_story_for_one_message_is_never_accounted_for():
    books = account(1, Counter({A: 1}), {A: Counter({b"granted": 1, b"duplicate": 1})}, Counter())
    assert books.other_stories == 1 and not books.ok(reexecutions=1)


def test_a_decision_for_no_message_is_not_accounted_for():
    books = account(1, Counter({A: 1}), {A: Counter({b"g": 1}), B: Counter({b"n": 1})}, Counter())
    assert books.decided == 1 and books.repeated == 1 and books.other_stories == 1
    assert not books.ok(reexecutions=1)


def test_the_expected_decisions_are_the_feeds_valid_messages():
    want = expected_decisions(400, seed=7, fraud_share=0.0)
    assert 0 < sum(want.values()) < 400  # the feed has bad messages (dead letters)
    assert all(vpa == vpa.lower() for vpa, _ in want)
    assert any(n > 1 for n in want.values())  # resends: a message each
