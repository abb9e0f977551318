"""Probe a broker engine for the behaviours the code works around on Tansu.

``python -m bench.quirks [--engine kafka|tansu]`` starts a fresh broker and
prints one line per probe (docs/design.md, "Broker quirks"):

* ``end_offsets``: 10 records in one batch; ListOffsets latest vs the Fetch
  high watermark (workarounds/highwater.py);
* ``fetch_wait``: a record produced while a fetch with max wait 1500 ms is
  parked on an empty partition: how long until the consumer has it
  (workarounds/fetch_wait.py);
* ``first_join``: a brand-new group's first member, subscribe → assignment
  (tools/wallet.py reads with assign());
* ``killed_member``: a member SIGKILLed (no LeaveGroup): how long the group
  still lists it (tools/replay.py --force, tests/integration/test_replay_tool.py);
* ``describe_groups``: kafka-python's own DescribeGroups parse (replay.py _Admin);
* ``transactions``: a transactional producer's InitProducerId, one commit
  and a read_committed read (processing_guarantee=exactly_once).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from brokers.launcher import ENGINES, engine_from_env, free_port, make_broker
from topologies.admin import ensure_topics
from workarounds.group_admin import GroupAdmin as _Admin

MEMBER = """
import sys, time
from kafka import KafkaConsumer
c = KafkaConsumer("q.members", bootstrap_servers=[sys.argv[1]], group_id="q-killed",
                  session_timeout_ms=10000, heartbeat_interval_ms=1000)
while not c.assignment():
    c.poll(200)
print("joined", flush=True)
while True:
    c.poll(200)
"""


def end_offsets(bootstrap: str) -> str:
    prod = KafkaProducer(bootstrap_servers=[bootstrap], linger_ms=200, batch_size=1 << 16)
    for i in range(10):
        prod.send("q.batch", value=b"%d" % i, partition=0)
    prod.flush()
    prod.close()
    tp = TopicPartition("q.batch", 0)
    c = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None, auto_offset_reset="earliest")
    c.assign([tp])
    listed = c.end_offsets([tp])[tp]
    got = 0
    deadline = time.monotonic() + 10
    while got < 10 and time.monotonic() < deadline:
        got += sum(len(v) for v in c.poll(500).values())
    hw = c.highwater(tp)
    c.close()
    return f"ListOffsets latest {listed}, Fetch high watermark {hw}, records read {got}"


def fetch_wait(bootstrap: str) -> str:
    """aiokafka (Faust's client) with Faust's fixed fetch_max_wait_ms=1500, one idle partition."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as ATP

    async def run() -> list[float]:
        tp = ATP("q.wait", 0)
        cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=1500)
        prod = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await cons.start()
        await prod.start()
        delays = []
        try:
            cons.assign([tp])
            await cons.seek_to_end(tp)
            await cons.getmany(tp, timeout_ms=500)
            for pause in (0.3, 0.7, 1.1, 0.5, 0.9):
                await asyncio.sleep(pause)  # fetches are parked at the broker meanwhile
                got = asyncio.ensure_future(cons.getone(tp))
                sent = time.monotonic()
                await prod.send_and_wait("q.wait", b"x", partition=0)
                await asyncio.wait_for(got, 10)
                delays.append(time.monotonic() - sent)
        finally:
            await prod.stop()
            await cons.stop()
        return delays

    delays = asyncio.run(run())
    return "send → received: " + ", ".join(f"{d * 1000:.0f} ms" for d in delays)


def first_join(bootstrap: str) -> str:
    c = KafkaConsumer(
        "q.join",
        bootstrap_servers=[bootstrap],
        group_id="q-join",
        session_timeout_ms=10000,
        max_poll_interval_ms=10000,
    )
    t = time.monotonic()
    while not c.assignment():
        c.poll(100)
        if time.monotonic() - t > 60:
            raise TimeoutError("no assignment in 60 s")
    took = time.monotonic() - t
    c.close()
    return f"subscribe → assignment {took:.1f} s (session/rebalance timeout 10 s)"


def _members(admin: KafkaAdminClient, group: str) -> list[Any]:
    info = admin.describe_groups([group]).get(group) or {}
    return list(info.get("members") or [])


def killed_member(bootstrap: str) -> str:
    proc = subprocess.Popen([sys.executable, "-c", MEMBER, bootstrap], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"joined"
    try:
        admin = _Admin(bootstrap_servers=[bootstrap], request_timeout_ms=5000)
        before = len(_members(admin, "q-killed"))
    finally:
        proc.kill()
        proc.wait()
    t = time.monotonic()
    while time.monotonic() - t < 40:
        members = _members(admin, "q-killed")
        if not members:
            admin.close()
            return f"{before} member; gone {time.monotonic() - t:.1f} s after SIGKILL"
        time.sleep(0.25)
    admin.close()
    return f"{before} member; still listed 40 s after SIGKILL (session timeout 10 s)"


def describe_groups(bootstrap: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=5000)
    try:
        admin.describe_groups(["q-join"])
        return "ok (no _Admin override needed)"
    except Exception as exc:
        return f"fails: {type(exc).__name__}: {exc}"
    finally:
        admin.close()


def transactions(bootstrap: str) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> str:
        prod = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="q-txn")
        try:
            await asyncio.wait_for(prod.start(), 20)
            async with prod.transaction():
                await prod.send_and_wait("q.txn", b"committed", partition=0)
            await prod.begin_transaction()
            await prod.send_and_wait("q.txn", b"aborted", partition=0)
            await prod.abort_transaction()
        except Exception as exc:
            return f"fails: {type(exc).__name__}: {exc}"
        finally:
            await prod.stop()
        cons = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, isolation_level="read_committed", group_id=None
        )
        await cons.start()
        try:
            from aiokafka import TopicPartition as ATP

            atp = ATP("q.txn", 0)
            cons.assign([atp])
            await cons.seek_to_beginning(atp)
            got: list[Any] = []
            for _ in range(10):
                batch = await cons.getmany(atp, timeout_ms=300)
                got += [r.value for r in batch.get(atp, [])]
        finally:
            await cons.stop()
        return f"InitProducerId ok; read_committed sees {got}"

    return asyncio.run(run())


PROBES = [end_offsets, fetch_wait, first_join, killed_member, describe_groups, transactions]


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quirks", description=__doc__.split("\n")[0])
    p.add_argument("--engine", choices=ENGINES, default=engine_from_env())
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="quirks-") as tmp:
        broker = make_broker(args.engine, port=free_port(), log=Path(tmp) / "broker.log")
        with broker:
            ensure_topics(
                [broker.bootstrap],
                {"q.batch": 1, "q.wait": 1, "q.join": 1, "q.members": 1, "q.txn": 1},
            )
            print(f"# {broker.description}", flush=True)
            for probe in PROBES:
                try:
                    result = probe(broker.bootstrap)
                except Exception as exc:
                    result = f"probe failed: {type(exc).__name__}: {exc}"
                print(f"{probe.__name__:16} {result}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
