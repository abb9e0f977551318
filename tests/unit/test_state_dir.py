"""Local table state is trusted only after a clean stop (topologies/worker.py).

Regression for a doubled-coin bug found by the chaos storm: after kill -9 the
local store could be ahead of the changelog, and Faust's changelog replay on
restart rolled some keys back while progress marks stayed ahead (a user's
daily cap was exceeded). Now a crash leaves no mark, and the next start
discards the local state and recovers from the changelog alone.
"""

from __future__ import annotations

from pathlib import Path

from topologies.worker import CLEAN_MARK, mark_clean, prepare_state_dir


def fake_state(data_dir: Path) -> Path:
    table = data_dir / "v1" / "tables" / "upi-rewards-user-state-0.db"
    table.mkdir(parents=True)
    (table / "000001.log").write_bytes(b"rocksdb wal")
    return table


def test_state_left_by_a_crash_is_discarded(tmp_path: Path):
    table = fake_state(tmp_path)
    assert prepare_state_dir(tmp_path) is True
    assert not table.exists() and list(tmp_path.iterdir()) == []


def test_state_left_by_a_clean_stop_is_kept_and_the_mark_consumed(tmp_path: Path):
    table = fake_state(tmp_path)
    mark_clean(tmp_path)
    assert prepare_state_dir(tmp_path) is False
    assert (table / "000001.log").read_bytes() == b"rocksdb wal"
    # The mark is gone while the worker runs: a kill -9 now would leave none.
    assert not (tmp_path / CLEAN_MARK).exists()
    assert prepare_state_dir(tmp_path) is True


def test_a_new_or_empty_data_dir_is_fine(tmp_path: Path):
    assert prepare_state_dir(tmp_path / "new") is False
    assert (tmp_path / "new").is_dir()
    assert prepare_state_dir(tmp_path / "new") is False
