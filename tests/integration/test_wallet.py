"""The reference wallet (`upi-rewards wallet`) against the real broker: repeats of a
grant_id applied once, positions kept with the rows so a rerun resumes, no VPA printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_wallet import grant
from tools.topic_io import producer
from topologies import topics

pytestmark = pytest.mark.integration


def wallet(bootstrap: str, db: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "tools.cli", "wallet", "--db", str(db)]
    cmd += ["--bootstrap", bootstrap, "--until-idle", "2", "--summary", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def send(bootstrap: str, *records: tuple[str, bytes]) -> None:
    prod = producer([bootstrap])
    for key, value in records:
        prod.send(topics.COIN_GRANTS, key=key.encode(), value=value)
    prod.flush()
    prod.close()


def test_wallet_applies_each_grant_id_once_and_resumes(broker, tmp_path: Path):
    asha, ravi = "asha.rao@okicici", "ravi.kumar@oksbi"
    g1, g2 = grant("P1:grant", asha, 18), grant("P2:grant", ravi, 40)
    claw = grant("R1:clawback", asha, 6, "CLAWBACK")
    # A crash upstream repeats outputs: the same grant, even after its clawback.
    send(broker.bootstrap, (asha, g1), (ravi, g2), (asha, claw), (asha, g1), (ravi, g2))
    db = tmp_path / "wallet.db"
    out = wallet(broker.bootstrap, db, "--balances", str(tmp_path / "balances.json"))
    assert "records read      : 5" in out
    assert "applied           : 3 (2 grants, 1 clawbacks, 2 users)" in out
    assert "duplicates skipped: 2" in out
    assert "= 52 net" in out
    assert "@" not in out.replace(str(tmp_path), "")  # counts only, no VPA on stdout
    assert json.loads((tmp_path / "balances.json").read_text()) == {asha: 12, ravi: 40}

    # A rerun starts where the rows end: nothing re-read, nothing re-applied.
    again = wallet(broker.bootstrap, db)
    assert "records read      : 5" in again and "duplicates skipped: 2" in again

    # New records (one more repeat among them) are picked up from there.
    send(broker.bootstrap, (asha, grant("P3:grant", asha, 7)), (asha, claw))
    third = wallet(broker.bootstrap, db, "--balances", str(tmp_path / "balances.json"))
    assert "records read      : 7" in third and "duplicates skipped: 3" in third
    assert json.loads((tmp_path / "balances.json").read_text()) == {asha: 19, ravi: 40}
