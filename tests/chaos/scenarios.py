"""The five fault-injection scenarios. Each returns a Report and raises AssertionError
on any lost or doubled coin, lost decision or dead letter, or a dead worker.

Used by tests/chaos/test_chaos.py (reduced sizes, in CI) and by
``python -m tests.chaos`` (``make chaos``: the full sizes, a table of figures).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson

from rewards.validate import Source, decode
from schemas.dead_letter import DeadLetter
from tests.chaos.harness import (
    Feeder,
    Report,
    Tally,
    WalletProcess,
    check_pipeline,
    cluster,
    metric,
    read_topic,
)
from tests.chaos.hostile import hostile
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics


def _drain_timeout(events: int) -> float:
    return max(300.0, events / 50)


def _wallet(tmp: Path, bootstrap: str) -> WalletProcess:
    """The reference wallet as its own process, with its SQLite file in the run's tmp dir."""
    return WalletProcess(bootstrap, tmp / "wallet.db", tmp / "wallet.log")


#: The worker environment of the exactly_once storm (Apache Kafka only).
EXACTLY_ONCE = {
    "REWARDS_PROCESSING_GUARANTEE": "exactly_once",
    "REWARDS_TRANSACTION_TIMEOUT_S": "10",
}


def crash_storm(
    events: int,
    kills: int,
    seed: int = 7,
    fresh_every: int = 0,
    rate: float | None = None,
    exactly_once: bool = False,
) -> Report:
    """kill -9 the worker at random moments mid-stream, ``kills`` times, restarting it
    each time on the same data dir (rocksdict + changelog); the wallet is kill -9'd once.

    The feed arrives at ``rate`` (default: spread over ~20 s) so that the kills
    land while events are flowing: a worker deciding a preloaded 3,000-event
    feed finishes it in one or two batches. With ``fresh_every`` = n > 0, every
    n-th restart gets an empty data dir instead (a replacement machine: state
    from the changelog alone). With ``exactly_once`` the workers run one Kafka
    transaction per batch and everything is read back ``read_committed`` (the
    wallet too): not one grant or decision record may be repeated."""
    report = Report("crash storm (kill -9)" + ", exactly_once" * exactly_once)
    rng = random.Random(seed)
    isolation = "read_committed" if exactly_once else "read_uncommitted"
    with cluster("storm") as c:
        if exactly_once:
            c.env = dict(EXACTLY_ONCE)
        state = c.tmp / "state"
        wallet = _wallet(c.tmp, c.bootstrap)
        wallet.read_committed = exactly_once
        pace = max(events / 20, 100.0) if rate is None else rate
        feeder = Feeder(c.bootstrap, events, seed, rate=pace, fraud_share=0.01)
        worker = c.start_worker(data_dir=state)
        wallet.start()
        tally = Tally(c.bootstrap, [topics.DECISIONS], isolation_level=isolation)
        per_kill = max(events // (kills + 1), 10)
        ceiling = int(events * 0.9)  # always below what will eventually exist: never wait forever
        restarts: list[float] = []
        fresh = 0
        try:
            for k in range(kills):
                target = min(
                    tally.counts[topics.DECISIONS] + rng.randint(per_kill // 3, per_kill), ceiling
                )
                tally.wait(topics.DECISIONS, target, _drain_timeout(events), f"before kill {k + 1}")
                time.sleep(rng.uniform(0.0, 0.4))
                worker.stop(signal.SIGKILL)
                report.log(f"kill -9 #{k + 1} at {tally.counts[topics.DECISIONS]:,} decisions")
                if k == kills // 2:
                    wallet.kill9()
                    wallet.start()
                if fresh_every and (k + 1) % fresh_every == 0:
                    state = c.tmp / f"state-fresh-{k + 1}"
                    fresh += 1
                t0 = time.monotonic()
                worker = c.start_worker(data_dir=state)
                restarts.append(time.monotonic() - t0)
        finally:
            tally.close()
        stats = feeder.join()
        sim, out = check_pipeline(
            c,
            report,
            wallet,
            _drain_timeout(events),
            feeder.values,
            feeder.truth,
            isolation_level=isolation,
        )
        if exactly_once:
            core = Counter(e.decision.model_dump_json().encode() for e in sim.effects if e.decision)
            repeated = sum(
                max(n - max(core[b], 1), 0) for b, n in Counter(out.decision_bytes).items()
            )
            grants_repeated = out.counts[topics.COIN_GRANTS] - len(out.grant_ids)
            report.add(decision_records_repeated=repeated, grant_records_repeated=grants_repeated)
            assert repeated == 0, f"{repeated} decision records repeated under exactly_once"
            assert grants_repeated == 0, f"{grants_repeated} grant records repeated"
        report.add(
            events=stats.sent,
            worker_kills=kills,
            restarts_on_empty_data_dir=fresh,
            wallet_kills=wallet.kills,
            worker_restart_to_healthy_s=round(sum(restarts) / max(len(restarts), 1), 1),
            replays_skipped_last_worker=int(metric(worker, "rewards_replays_skipped_total")),
        )
        assert worker.proc.poll() is None, "the last worker died"
    return report.finish()


def rebalance(events: int, seed: int = 8) -> Report:
    """3 workers, one group, 12 partitions; kill -9 one mid-stream, add it back later."""
    report = Report("rebalance (3 workers, kill one, add it back)")
    with cluster("rebalance", feed_partitions=12, partitions=12) as c:
        wallet = _wallet(c.tmp, c.bootstrap)
        dirs = [c.tmp / f"state-{i}" for i in range(3)]
        workers = [c.start_worker(data_dir=d) for d in dirs]
        feeder = Feeder(c.bootstrap, events, seed, fraud_share=0.01, rate=max(events / 40, 200))
        tally = Tally(c.bootstrap, [topics.DECISIONS])
        try:
            tally.wait(topics.DECISIONS, events // 3, _drain_timeout(events), "before the kill")
            workers[1].stop(signal.SIGKILL)
            report.log(f"kill -9 worker 2 at {tally.counts[topics.DECISIONS]:,} decisions")
            at_kill = tally.counts[topics.DECISIONS]
            tally.wait(topics.DECISIONS, at_kill + events // 4, _drain_timeout(events), "after")
            workers[1] = c.start_worker(data_dir=dirs[1])
            report.log(f"worker 2 back at {tally.counts[topics.DECISIONS]:,} decisions")
        finally:
            tally.close()
        stats = feeder.join()
        check_pipeline(c, report, wallet, _drain_timeout(events), feeder.values, feeder.truth)
        per_worker = [int(metric(w, "rewards_events_total")) for w in workers]
        held = [int(metric(w, "rewards_assigned_partitions")) for w in workers]
        report.add(
            events=stats.sent,
            workers=3,
            partitions=12,
            decided_per_worker_since_start=per_worker,
            partitions_held_at_the_end=held,
        )
        for i, w in enumerate(workers):
            assert w.proc.poll() is None, f"worker {i + 1} died"
        # Partitions held, not events decided: on a loaded box the feed can end before
        # the re-added worker's rebalance does, and it then has nothing left to decide.
        assert held[1] > 0, f"the re-added worker took no partitions: {held}"
    return report.finish()


def crash_storm_packs(events: int, kills: int, seed: int = 27) -> Report:
    """kill -9 inside pack-sized batches: the feed is preloaded, so every batch holds
    thousands of events, and each kill lands a random 0–0.6 s after the restarted
    worker's first new decision, i.e. while a batch's outputs, changelog records
    and store write are in flight."""
    report = Report("crash storm, pack-sized batches (kill -9)")
    rng = random.Random(seed)
    with cluster("storm-packs") as c:
        state = c.tmp / "state"
        wallet = _wallet(c.tmp, c.bootstrap)
        feeder = Feeder(c.bootstrap, events, seed, fraud_share=0.01)
        stats = feeder.join()
        worker = c.start_worker(data_dir=state)
        wallet.start()
        tally = Tally(c.bootstrap, [topics.DECISIONS])
        killed_at: list[int] = []
        try:
            for k in range(kills):
                seen = tally.counts[topics.DECISIONS]
                if seen >= events * 0.95:
                    break  # everything decided already: no batch left to kill inside
                tally.wait(
                    topics.DECISIONS, seen + 1, _drain_timeout(events), f"before kill {k + 1}"
                )
                time.sleep(rng.uniform(0.0, 0.6))
                worker.stop(signal.SIGKILL)
                killed_at.append(tally.counts[topics.DECISIONS])
                report.log(f"kill -9 #{k + 1} at {killed_at[-1]:,} decisions")
                worker = c.start_worker(data_dir=state)
        finally:
            tally.close()
        check_pipeline(c, report, wallet, _drain_timeout(events), feeder.values, feeder.truth)
        report.add(
            events=stats.sent,
            worker_kills=len(killed_at),
            killed_at_decisions=", ".join(f"{n:,}" for n in killed_at),
            replays_skipped_last_worker=int(metric(worker, "rewards_replays_skipped_total")),
        )
        assert killed_at, "no kill landed before the feed was decided"
        assert worker.proc.poll() is None, "the last worker died"
    return report.finish()


def broker_stall(events: int, stall_s: float, seed: int = 9) -> Report:
    """SIGSTOP the broker for ``stall_s`` mid-stream, then SIGCONT; workers recover alone."""
    report = Report(f"broker stall (SIGSTOP {stall_s:.0f}s)")
    with cluster("stall") as c:
        wallet = _wallet(c.tmp, c.bootstrap)
        workers = [c.start_worker(), c.start_worker()]
        feeder = Feeder(c.bootstrap, events, seed, fraud_share=0.01, rate=max(events / 30, 200))
        tally = Tally(c.bootstrap, [topics.DECISIONS])
        assert c.broker.proc is not None
        try:
            tally.wait(topics.DECISIONS, events // 4, _drain_timeout(events), "before the stall")
            at_stop = tally.counts[topics.DECISIONS]
            os.kill(c.broker.proc.pid, signal.SIGSTOP)
            report.log(f"broker stopped at {at_stop:,} decisions")
            time.sleep(stall_s)
            os.kill(c.broker.proc.pid, signal.SIGCONT)
            resumed = time.monotonic()
            tally.wait(topics.DECISIONS, at_stop + 1, 300, "after the stall")
            report.add(first_decision_after_sigcont_s=round(time.monotonic() - resumed, 1))
        finally:
            tally.close()
        stats = feeder.join()
        check_pipeline(c, report, wallet, _drain_timeout(events), feeder.values, feeder.truth)
        report.add(events=stats.sent, workers=2, stall_s=stall_s)
        for i, w in enumerate(workers):
            assert w.proc.poll() is None, f"worker {i + 1} died during the stall"
            assert w.healthy(), f"worker {i + 1} does not answer /healthz"
    return report.finish()


def graceful_stop(events: int, seed: int = 10) -> Report:
    """SIGTERM mid-stream flushes outputs and commits; the restart re-emits nothing."""
    report = Report("graceful stop (SIGTERM, restart)")
    with cluster("graceful") as c:
        wallet = _wallet(c.tmp, c.bootstrap)
        feeder = Feeder(c.bootstrap, events, seed, fraud_share=0.01)
        feeder.join()
        state = c.tmp / "state"
        first = c.start_worker(data_dir=state)
        tally = Tally(c.bootstrap, [topics.DECISIONS])
        try:
            tally.wait(topics.DECISIONS, int(events * 0.4), _drain_timeout(events), "before")
        finally:
            tally.close()
        t0 = time.monotonic()
        code = first.stop(signal.SIGTERM, timeout=60)
        stop_s = round(time.monotonic() - t0, 1)
        report.log(f"SIGTERM: exit code {code} after {stop_s}s")
        second = c.start_worker(data_dir=state)
        _, tally = check_pipeline(
            c, report, wallet, _drain_timeout(events), feeder.values, feeder.truth
        )
        skipped = int(metric(second, "rewards_replays_skipped_total"))
        _, totals = wallet.read()
        valid = sum(1 for _ in tally.decisions)
        report.add(
            events=events,
            sigterm_exit_code=code,
            sigterm_to_exit_s=stop_s,
            replays_skipped_after_restart=skipped,
        )
        assert code == 0, f"SIGTERM exit code {code}"
        assert totals.duplicates == 0, f"{totals.duplicates} grants re-emitted after SIGTERM"
        repeated = report.rows["decisions"]
        assert "(0 repeated)" in str(repeated), f"decisions re-emitted after SIGTERM: {repeated}"
        assert skipped == 0, f"{skipped} feed messages re-read after a clean stop"
        assert valid > 0
        assert second.proc.poll() is None, "the restarted worker died"
        assert second.healthy(), "the restarted worker does not answer /healthz"
    return report.finish()


def hostile_stream(hostile_count: int, healthy: int, seed: int = 11) -> Report:
    """Hostile messages interleaved with healthy events on the same partitions."""
    report = Report("hostile input through a live worker")
    rng = random.Random(seed)
    with cluster("hostile") as c:
        wallet = _wallet(c.tmp, c.bootstrap)
        worker = c.start_worker()
        good = list(generate(healthy, seed, bad_share=0.0, fraud_share=0.0))
        per = max(hostile_count // max(healthy, 1), 1)
        prod = producer([c.bootstrap])
        produced: list[bytes | None] = []
        sent_hostile = 0
        for i, m in enumerate(good):
            doc = orjson.loads(m.value or b"{}")
            key = str(doc["payer_vpa"]).lower().encode()
            prod.send(topics.TRANSACTIONS, key=key, value=m.value)
            produced.append(m.value)
            burst = per if i < len(good) - 1 else hostile_count - sent_hostile
            variants = hostile(rng, doc)
            for _ in range(min(burst, hostile_count - sent_hostile)):
                value = next(variants)
                prod.send(topics.TRANSACTIONS, key=key, value=value)
                produced.append(value)
                sent_hostile += 1
        prod.flush()
        prod.close()
        assert sent_hostile == hostile_count
        sim, tally = check_pipeline(
            c, report, wallet, _drain_timeout(healthy + hostile_count), produced
        )
        feed = read_topic(c.bootstrap, topics.TRANSACTIONS)
        want_reasons = {
            (p, o): r.reason.value
            for p, o, _, v in feed
            if isinstance(r := decode(v, Source(topics.TRANSACTIONS, p, o)), DeadLetter)
        }
        got_reasons = {
            (int(str(d["partition"])), int(str(d["offset"]))): d["reason"] for d in tally.letters
        }
        assert len(want_reasons) == hostile_count
        assert got_reasons == want_reasons, "a dead letter has the wrong reason or position"
        assert "INTERNAL_ERROR" not in set(got_reasons.values())
        # Healthy events decided exactly as the pure core says, per user, in order.
        want: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for e in sim.effects:
            if e.decision is not None:
                dec = e.decision
                want[dec.user_vpa].append((dec.txn_id, dec.outcome.value, dec.coins))
        got: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for d in tally.decisions:
            got[str(d["user_vpa"])].append(
                (str(d["txn_id"]), str(d["outcome"]), int(str(d["coins"])))
            )
        assert got == want, "healthy events around hostile ones were decided differently"
        assert worker.proc.poll() is None and worker.healthy(), "the worker did not survive"
        reasons: dict[str, int] = defaultdict(int)
        for reason in got_reasons.values():
            reasons[str(reason)] += 1
        report.add(
            hostile_sent=hostile_count,
            healthy_sent=healthy,
            dead_letter_reasons=dict(sorted(reasons.items())),
            dead_letters_metric=int(metric(worker, "rewards_dead_letters_total")),
        )
        assert int(metric(worker, "rewards_dead_letters_total")) == hostile_count
    return report.finish()


__all__ = [
    "broker_stall",
    "crash_storm",
    "graceful_stop",
    "hostile_stream",
    "rebalance",
]
