"""The fault-injection suite at CI size: real broker, real workers, real faults.

Sizes come from the environment so the whole suite stays inside its CI
budget on a 2-core box (about 6-9 minutes for all six here, depending on load):
``CHAOS_EVENTS`` (default 3000) events per scenario, ``CHAOS_KILLS`` (3)
kill -9s in the storm, ``CHAOS_STALL_S`` (10) seconds of broker SIGSTOP,
``CHAOS_HOSTILE`` (2000) hostile messages. ``make chaos`` runs the documented
full sizes instead (``python -m tests.chaos``). Run with ``-s`` to see each
scenario's figures. A failed scenario keeps its broker's and workers' logs (the
path is printed); ``CHAOS_KEEP_LOGS=1`` keeps them for every scenario.
"""

from __future__ import annotations

import os

import pytest

from brokers.launcher import engine_from_env
from tests.chaos import scenarios

pytestmark = pytest.mark.chaos

EVENTS = int(os.environ.get("CHAOS_EVENTS", "3000"))
KILLS = int(os.environ.get("CHAOS_KILLS", "3"))
STALL_S = float(os.environ.get("CHAOS_STALL_S", "10"))
HOSTILE = int(os.environ.get("CHAOS_HOSTILE", "2000"))


def test_crash_storm_kill_9_loses_and_doubles_no_coin():
    print("\n" + scenarios.crash_storm(EVENTS, KILLS).text())


@pytest.mark.skipif(
    engine_from_env() != "kafka",
    reason="exactly_once needs broker transactions: Apache Kafka only (REWARDS_TEST_BROKER=kafka)",
)
def test_crash_storm_exactly_once_repeats_no_record():
    """One transaction per batch; read back read_committed: no grant or decision twice."""
    print("\n" + scenarios.crash_storm(EVENTS, KILLS, seed=19, exactly_once=True).text())


def test_crash_storm_with_replacement_machines_recovering_from_the_changelog():
    """Every second restart on an empty data dir: state from the changelog alone."""
    print("\n" + scenarios.crash_storm(EVENTS, KILLS, seed=17, fresh_every=2).text())


def test_crash_storm_inside_pack_sized_batches():
    print("\n" + scenarios.crash_storm_packs(max(EVENTS * 5, 15_000), KILLS).text())


def test_rebalance_kill_one_of_three_workers_and_add_it_back():
    print("\n" + scenarios.rebalance(EVENTS).text())


def test_broker_stall_sigstop_then_sigcont_workers_recover_alone():
    print("\n" + scenarios.broker_stall(EVENTS, STALL_S).text())


def test_graceful_stop_sigterm_then_restart_re_emits_nothing():
    print("\n" + scenarios.graceful_stop(max(EVENTS // 2, 1000)).text())


def test_hostile_stream_every_bad_message_dead_lettered_worker_alive():
    print("\n" + scenarios.hostile_stream(HOSTILE, max(HOSTILE // 2, 200)).text())
