"""Local table state survives any stop, a crash included (topologies/worker.py).

The stages write the local store only after its changelog records are
acknowledged (agents/checkpoint.py), so nothing is discarded at start-up.
"""

from __future__ import annotations

from pathlib import Path

from topologies.worker import LEGACY_MARK, prepare_state_dir


def fake_state(data_dir: Path) -> Path:
    table = data_dir / "v1" / "tables" / "upi-rewards-user-state-0.db"
    table.mkdir(parents=True)
    (table / "000001.log").write_bytes(b"rocksdb wal")
    return table


def test_state_left_by_a_crash_is_kept(tmp_path: Path):
    table = fake_state(tmp_path)
    prepare_state_dir(tmp_path)
    assert (table / "000001.log").read_bytes() == b"rocksdb wal"


def test_the_old_clean_mark_is_removed_and_state_kept(tmp_path: Path):
    table = fake_state(tmp_path)
    (tmp_path / LEGACY_MARK).write_text("old\n")
    prepare_state_dir(tmp_path)
    assert not (tmp_path / LEGACY_MARK).exists()
    assert table.exists()


def test_a_new_data_dir_is_made(tmp_path: Path):
    prepare_state_dir(tmp_path / "new")
    assert (tmp_path / "new").is_dir()
