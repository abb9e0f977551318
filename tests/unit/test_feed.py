"""The synthetic feed: deterministic, realistic mix, and an exact ground-truth flag."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from zoneinfo import ZoneInfo

from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tools.feedgen import generate


def decoded(n: int, seed: int, **kw):
    out = []
    for i, m in enumerate(generate(n, seed, **kw)):
        out.append((m, decode(m.value, Source("t", 0, i))))
    return out


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = [(m.key, m.value) for m in generate(2000, 5)]
    assert a == [(m.key, m.value) for m in generate(2000, 5)]
    assert a != [(m.key, m.value) for m in generate(2000, 6)]
    assert len(a) == 2000


def test_valid_flag_is_the_truth_and_every_record_can_be_produced():
    for seed in (1, 2, 3):
        for m, result in decoded(3000, seed, bad_share=0.05):
            assert m.valid == isinstance(result, Transaction)
            assert m.key is not None or m.value is not None  # Kafka needs one of them


def test_realistic_mix():
    rows = decoded(20_000, 9)
    txns = [t for _, t in rows if isinstance(t, Transaction)]
    bad = len(rows) - len(txns)
    assert 100 <= bad <= 320  # about 1%
    kinds = Counter((t.kind.value, t.status.value, t.payee_kind.value) for t in txns)
    merchant = sum(n for (k, s, p), n in kinds.items() if p == "MERCHANT" and k == "PAYMENT")
    person = sum(n for (k, s, p), n in kinds.items() if p == "PERSON" and k == "PAYMENT")
    assert 0.55 < merchant / (merchant + person) < 0.75
    assert kinds[("PAYMENT", "PENDING", "MERCHANT")] + kinds[("PAYMENT", "PENDING", "PERSON")] > 300
    assert sum(n for (k, _, _), n in kinds.items() if k == "REFUND") > 150
    assert {t.mcc for t in txns if t.mcc} >= {"5411", "5812", "5814", "5541", "4121"}
    # Refunds of known payments repeat the payment's payer and payee.
    paid = {t.txn_id: t for t in txns if t.kind == "PAYMENT" and t.status == "SUCCESS"}
    refunds = [t for t in txns if t.kind == "REFUND" and t.original_txn_id in paid]
    assert len(refunds) > 100
    for r in refunds:
        assert r.original_txn_id is not None
        p = paid[r.original_txn_id]
        assert (r.payer_vpa, r.payee_vpa, r.amount_paise <= p.amount_paise) == (
            p.payer_vpa,
            p.payee_vpa,
            True,
        )
    # PENDING then SUCCESS of the same txn_id, and resends of a SUCCESS.
    statuses: dict[str, list[str]] = {}
    for t in txns:
        statuses.setdefault(t.txn_id, []).append(t.status.value)
    assert sum(1 for s in statuses.values() if s[:2] == ["PENDING", "SUCCESS"]) > 300
    assert sum(1 for s in statuses.values() if s.count("SUCCESS") > 1) > 50


def test_event_times_cross_ist_midnight_and_amounts_are_integer_paise():
    ist = ZoneInfo("Asia/Kolkata")
    days = set()
    for m in islice(generate(20_000, 4, bad_share=0.0), 0, None, 50):
        t = decode(m.value, Source("t", 0, 0))
        assert isinstance(t, Transaction)
        assert isinstance(t.amount_paise, int) and 1 <= t.amount_paise <= 50_000_000
        days.add(t.event_time.astimezone(ist).date())
    assert len(days) >= 2
