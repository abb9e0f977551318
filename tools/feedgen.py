"""A realistic, deterministic synthetic UPI feed: for the demo, tests and benchmarks.

Pure (no Kafka): ``generate`` yields the bytes a bank would put on
``upi.transactions`` plus a ``valid`` flag that is the ground truth for
``rewards.validate.decode``. It streams with bounded memory, so a run of
millions of events costs no more than a run of thousands.

What it produces, per message (shares are approximate):
* P2M payments (~65%) at Indian merchants with real MCCs and price ranges
  (chai at a tea stall, groceries at a kirana or supermarket, fuel, cabs,
  electricity bills, recharges, pharmacy, electronics, clothing, cinema);
  P2P transfers (~35%) between people.
* ~5% of payments arrive first as PENDING and a few messages later as
  SUCCESS with the same txn_id; ~3% FAILED; ~1% exact resends of an earlier
  SUCCESS (the bank retrying); ~2% refunds of an earlier merchant payment
  (partial or full, sometimes two partials), a few of unknown payments.
* ``bad_share`` of malformed messages of every kind the contract rejects.
* event_time in +05:30, moving forward a few seconds per message with a
  little jitter, so 100k events span days and cross IST midnight.

Honest users behave like people: at most ``HONEST_PER_10_MIN`` payments in
any ten minutes and ``HONEST_SAME_PAYEE_PER_HOUR`` to one payee in an hour,
and person-to-person money flows one way (a user pays only users later in the
pool), so no honest pair pays each other back. With ``fraud_share`` > 0, that
share of users also *farm*, by one pattern each (``FARMING_PATTERNS``): a
burst of small merchant payments (velocity), the same merchant again and
again (same_payee), or two farmers paying each other back and forth
(circular). ``truth`` receives who farms and how, to score detection.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

IST = timezone(timedelta(hours=5, minutes=30))
DEFAULT_START = datetime(2026, 11, 20, 9, 0, 0, tzinfo=IST)
HANDLES = ("okaxis", "oksbi", "okhdfcbank", "okicici", "ybl", "ibl", "axl", "paytm", "apl", "upi")
BANK_PREFIX = ("AXI", "SBI", "HDF", "ICI", "YBL", "IBL", "PTM", "KKB")
FIRST = (
    "aarav",
    "priya",
    "rohan",
    "ananya",
    "vikram",
    "sneha",
    "arjun",
    "kavya",
    "rahul",
    "divya",
    "aditya",
    "pooja",
    "karan",
    "neha",
    "siddharth",
    "meera",
    "amit",
    "ishita",
    "manoj",
    "lakshmi",
    "suresh",
    "deepa",
    "ravi",
    "asha",
    "farhan",
    "zoya",
    "gurpreet",
    "harpreet",
    "venkat",
    "anjali",
)
LAST = (
    "sharma",
    "verma",
    "iyer",
    "nair",
    "reddy",
    "patel",
    "shah",
    "gupta",
    "singh",
    "khan",
    "das",
    "menon",
    "rao",
    "joshi",
    "kulkarni",
    "mehta",
    "bose",
    "pillai",
    "chopra",
    "naidu",
)


@dataclass(frozen=True, slots=True)
class _Category:
    mcc: str
    names: tuple[str, ...]
    min_rupees: int
    max_rupees: int
    weight: int


CATEGORIES = (
    _Category(
        "5411", ("dmart", "bigbasket", "reliancefresh", "kirana.store", "moreretail"), 40, 5000, 22
    ),
    _Category(
        "5812",
        ("barbeque.nation", "saravanabhavan", "haldirams", "paradise.biryani"),
        150,
        4000,
        10,
    ),
    _Category(
        "5814", ("chaipoint", "tea.stall", "mcdonalds", "dominos", "vadapav.corner"), 10, 600, 18
    ),
    _Category("5541", ("indianoil", "hpcl.pump", "bharatpetroleum", "shell.fuel"), 200, 3000, 9),
    _Category("4121", ("uber.india", "ola.cabs", "rapido", "auto.rickshaw"), 30, 900, 10),
    _Category("4900", ("bescom", "tatapower", "msedcl", "adani.electricity"), 300, 6000, 5),
    _Category("4814", ("jio.recharge", "airtel.prepaid", "vi.recharge"), 99, 999, 8),
    _Category("5912", ("apollo.pharmacy", "medplus", "netmeds"), 50, 2500, 6),
    _Category("5732", ("croma", "reliance.digital", "vijaysales"), 500, 100_000, 3),
    _Category("5651", ("maxfashion", "westside", "pantaloons", "zudio"), 300, 8000, 5),
    _Category("5999", ("local.store", "stationery.mart", "gift.shop"), 20, 3000, 3),
    _Category("7832", ("pvr.cinemas", "inox", "cinepolis"), 150, 1500, 1),
)
_CATEGORY_WEIGHTS = tuple(c.weight for c in CATEGORIES)
_MISSABLE = (
    "txn_id",
    "kind",
    "status",
    "payer_vpa",
    "payee_vpa",
    "payee_kind",
    "amount_paise",
    "currency",
    "event_time",
)


HONEST_PER_10_MIN = 4
HONEST_WINDOW = timedelta(minutes=10)
HONEST_SAME_PAYEE_PER_HOUR = 2
FARMING_PATTERNS = ("velocity", "same_payee", "circular")


@dataclass(frozen=True, slots=True)
class FeedMessage:
    key: bytes | None
    value: bytes | None
    valid: bool


def to_json_bytes(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


class _Feed:
    """Generator state: small, bounded pools and a clock."""

    def __init__(
        self,
        seed: int,
        start: datetime,
        users: int,
        merchants: int,
        count: int = 0,
        fraud_share: float = 0.0,
        truth: dict[str, str] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = start
        self.seq = 0
        rng = self.rng
        self.users = [
            f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randrange(1, 999)}@{rng.choice(HANDLES)}"
            for _ in range(users)
        ]
        # Zipf-like activity: a few users pay a lot (they meet the daily cap).
        self.user_weights = [1.0 / (i + 1) ** 0.8 for i in range(users)]
        # Cumulative once: the same draws as passing the weights, without an
        # O(users) sum per payment (100k-user feeds for the benchmarks).
        self.user_cum_weights = list(itertools.accumulate(self.user_weights))
        self.merchants: list[tuple[str, _Category]] = []
        for i in range(merchants):
            cat = rng.choices(CATEGORIES, _CATEGORY_WEIGHTS)[0]
            name = rng.choice(cat.names)
            self.merchants.append(
                (f"{name}.{i}@{rng.choice(('ybl', 'paytm', 'okaxis', 'icici'))}", cat)
            )
        self.paid: deque[dict[str, Any]] = deque(maxlen=2000)  # recent SUCCESS merchant payments
        self.resendable: deque[dict[str, Any]] = deque(maxlen=500)
        self.pending: deque[tuple[int, dict[str, Any]]] = deque()  # (due seq, SUCCESS doc)
        self.recent: dict[int, deque[tuple[datetime, str]]] = {}  # payer -> (time, payee)
        self.scripts: list[tuple[int, list[str], str]] = []  # (start seq, farmers, pattern)
        self.script: deque[dict[str, Any]] = deque()
        self.truth = truth if truth is not None else {}
        self._plan_farming(count, fraud_share)

    def _plan_farming(self, count: int, share: float) -> None:
        """Pick farmers (never the pool's heaviest users) and when each one farms."""
        n = len(self.users)
        farmers = int(n * share)
        if farmers == 0:
            return
        rng = self.rng
        chosen = rng.sample(range(n // 10, n), min(farmers, n - n // 10))
        i = 0
        while i < len(chosen):
            pattern = FARMING_PATTERNS[len(self.scripts) % len(FARMING_PATTERNS)]
            group = chosen[i : i + (2 if pattern == "circular" else 1)]
            i += len(group)
            if len(group) < 2 and pattern == "circular":
                pattern = "velocity"
            names = [self.users[g] for g in group]
            for name in names:
                self.truth[name] = pattern
            start = rng.randrange(int(count * 0.05), max(int(count * 0.85), 1) + 1)
            self.scripts.append((start, names, pattern))
        self.scripts.sort(key=lambda s: s[0], reverse=True)

    def _farm(self, names: list[str], pattern: str) -> None:
        """Queue one farming script; amounts are small but each still earns coins."""
        rng = self.rng
        if pattern == "velocity":
            for _ in range(rng.randrange(14, 20)):
                payee, cat = rng.choice(self.merchants)
                self.script.append(
                    self._scripted(names[0], payee, cat.mcc, rng.randrange(100, 400))
                )
        elif pattern == "same_payee":
            payee, cat = rng.choice(self.merchants)
            for _ in range(rng.randrange(7, 10)):
                self.script.append(
                    self._scripted(names[0], payee, cat.mcc, rng.randrange(100, 400))
                )
        else:
            a, b = names
            for hop in range(rng.randrange(4, 7)):
                payer, payee = (a, b) if hop % 2 == 0 else (b, a)
                self.script.append(self._scripted(payer, payee, None, rng.randrange(100, 300)))

    def _scripted(self, payer: str, payee: str, mcc: str | None, rupees: int) -> dict[str, Any]:
        kind = {"payee_kind": "MERCHANT", "mcc": mcc} if mcc else {"payee_kind": "PERSON"}
        return {
            "txn_id": "",  # stamped when sent, so ids and times follow the stream
            "kind": "PAYMENT",
            "status": "SUCCESS",
            "payer_vpa": payer,
            "payee_vpa": payee,
            **kind,
            "amount_paise": rupees * 100,
            "currency": "INR",
            "event_time": "",
        }

    def _allowed(self, payer: int, payee: str) -> bool:
        """Would an honest person make this payment now (rate and same-payee limits)?"""
        recent = self.recent.setdefault(payer, deque())
        while recent and self.now - recent[0][0] > timedelta(hours=1):
            recent.popleft()
        last_10 = sum(1 for t, _ in recent if self.now - t <= HONEST_WINDOW)
        same = sum(1 for _, p in recent if p == payee)
        return last_10 < HONEST_PER_10_MIN and same < HONEST_SAME_PAYEE_PER_HOUR

    def txn_id(self) -> str:
        self.seq += 1
        stamp = self.now.strftime("%Y%m%d%H%M%S")
        return f"{self.rng.choice(BANK_PREFIX)}{stamp}{self.seq:09d}"

    def tick(self) -> str:
        self.now += timedelta(milliseconds=self.rng.randrange(500, 9000))
        jitter = timedelta(seconds=self.rng.randrange(-3, 1))
        return (self.now + jitter).isoformat()

    def payment(self) -> dict[str, Any]:
        rng = self.rng
        n = len(self.users)
        for _ in range(50):
            index = rng.choices(range(n), cum_weights=self.user_cum_weights)[0]
            if rng.random() < 0.65 or index == n - 1:
                payee, cat = rng.choice(self.merchants)
                rupees = int(rng.triangular(cat.min_rupees, cat.max_rupees, cat.min_rupees * 2))
                doc: dict[str, Any] = {
                    "payee_vpa": payee,
                    "payee_kind": "MERCHANT",
                    "mcc": cat.mcc,
                }
            else:
                payee = self.users[rng.randrange(index + 1, n)]  # money flows one way
                rupees = int(rng.triangular(50, 20_000, 500))
                doc = {"payee_vpa": payee, "payee_kind": "PERSON"}
            if self._allowed(index, payee):
                break
        self.recent[index].append((self.now, payee))
        payer = self.users[index]
        paise = max(1, min(rupees * 100 + rng.choice((0, 0, 0, 50, 99)), 50_000_000))
        return {
            "txn_id": self.txn_id(),
            "kind": "PAYMENT",
            "status": "SUCCESS",
            "payer_vpa": payer,
            **doc,
            "amount_paise": paise,
            "currency": "INR",
            "event_time": self.tick(),
        }

    def refund(self) -> dict[str, Any]:
        rng = self.rng
        if not self.paid or rng.random() < 0.1:
            base = self.payment()
            original = f"UNKNOWN{base['txn_id']}"
            amount = base["amount_paise"]
        else:
            base = rng.choice(self.paid)
            original = base["txn_id"]
            amount = (
                base["amount_paise"]
                if rng.random() < 0.6
                else rng.randrange(1, base["amount_paise"] + 1)
            )
        return {
            **base,
            "txn_id": self.txn_id(),
            "kind": "REFUND",
            "status": "SUCCESS",
            "original_txn_id": original,
            "amount_paise": amount,
            "event_time": self.tick(),
        }

    def next_valid(self) -> dict[str, Any]:
        rng = self.rng
        if self.scripts and self.scripts[-1][0] <= self.seq:
            _, names, pattern = self.scripts.pop()
            self._farm(names, pattern)
        if self.script:
            return {**self.script.popleft(), "txn_id": self.txn_id(), "event_time": self.tick()}
        if self.pending and self.pending[0][0] <= self.seq:
            return self.pending.popleft()[1]
        roll = rng.random()
        if roll < 0.01 and self.resendable:
            return dict(rng.choice(self.resendable))
        if roll < 0.03:
            return self.refund()
        doc = self.payment()
        if roll < 0.06:
            return {**doc, "status": "FAILED"}
        if roll < 0.11:
            self.pending.append((self.seq + rng.randrange(1, 20), doc))
            return {**doc, "status": "PENDING"}
        if rng.random() < 0.02:
            doc["note"] = "extra fields are ignored"
        if rng.random() < 0.02:
            doc["payer_vpa"] = doc["payer_vpa"].upper()  # VPAs compare case-insensitively
        return doc

    def remember(self, doc: dict[str, Any]) -> None:
        if doc.get("status") == "SUCCESS":
            self.resendable.append(doc)
            if doc.get("kind") == "PAYMENT" and doc.get("payee_kind") == "MERCHANT":
                self.paid.append(doc)

    def bad(self) -> tuple[bytes | None, str]:
        """One malformed message and the payer key it would carry."""
        rng = self.rng
        doc = self.payment()
        key = doc["payer_vpa"]
        kind = rng.randrange(16)
        if kind == 0:
            return b"txn_id=" + doc["txn_id"].encode() + b";amount=" + b"12", key
        if kind == 1:
            return b"\xff\xfe\x00\x81" + doc["txn_id"].encode(), key
        if kind == 2:
            return to_json_bytes([doc]), key  # type: ignore[arg-type]
        if kind == 3:
            return rng.choice((None, b"")), key
        if kind == 4:
            del doc[rng.choice(_MISSABLE)]
        elif kind == 5:
            doc["amount_paise"] = rng.choice(
                (doc["amount_paise"] / 100, str(doc["amount_paise"]), True)
            )
        elif kind == 6:
            doc["amount_paise"] = rng.choice((0, -500, 50_000_001))
        elif kind == 7:
            doc["event_time"] = doc["event_time"][:19]  # naive
        elif kind == 8:
            doc["payer_vpa"] = doc["payer_vpa"].replace("@", "#")
        elif kind == 9:
            doc.update(payee_kind="MERCHANT")
            doc.pop("mcc", None)
        elif kind == 10:
            doc.update(kind="REFUND")
        elif kind == 11:
            doc["currency"] = "USD"
        elif kind == 12:
            doc["blob"] = "x" * 20_000  # over the 16 KiB limit
        elif kind == 13:
            doc["txn_id"] = doc["txn_id"] + " /dup"
        elif kind == 14:
            doc["status"] = "SETTLED"
        else:
            doc["event_time"] = doc["event_time"].replace("T", "T25:")[:16] + "+05:30"
        return to_json_bytes(doc), key


def generate(
    count: int,
    seed: int = 42,
    *,
    start: datetime | None = None,
    bad_share: float = 0.01,
    users: int | None = None,
    merchants: int | None = None,
    fraud_share: float = 0.0,
    truth: dict[str, str] | None = None,
) -> Iterator[FeedMessage]:
    """Yield ``count`` feed messages, the same ones for the same arguments.

    ``truth`` (filled as farmers are planned) maps each farming user's VPA to
    its pattern; every other user is honest.
    """
    feed = _Feed(
        seed,
        start or DEFAULT_START,
        users or max(50, count // 40),
        merchants or max(20, min(5000, count // 100)),
        count,
        fraud_share,
        truth,
    )
    rng = feed.rng
    for _ in range(count):
        if rng.random() < bad_share:
            value, payer = feed.bad()
            key = _key(rng, payer)
            # A tombstone (no value) always has a key: Kafka has no empty record.
            yield FeedMessage(key if value is not None else payer.encode(), value, False)
            continue
        doc = feed.next_valid()
        feed.remember(doc)
        yield FeedMessage(_key(rng, doc["payer_vpa"]), to_json_bytes(doc), True)


def _key(rng: random.Random, payer: str) -> bytes | None:
    """Banks key by whatever they like; mostly the payer, sometimes nothing."""
    roll = rng.random()
    if roll < 0.9:
        return payer.encode()
    if roll < 0.95:
        return None
    return f"shard-{rng.randrange(64)}".encode()
