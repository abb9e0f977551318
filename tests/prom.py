"""A real Prometheus for the tests: Debian's package, installed on demand.

CI runs as root on Debian 12 with apt-get, so the Prometheus checks must run
there rather than skip: when ``prometheus``/``promtool`` are missing and
apt-get can be used, they are installed (``prometheus`` 2.42 pulls promtool).
Only when that is impossible do callers skip. A policy-rc.d is put in place
for the install, when none exists, so the package's own service (port 9090)
is not started next to the tests' server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tools.processes import stop_process

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "tests" / "rules_test.yml"
POLICY_RC = Path("/usr/sbin/policy-rc.d")


@dataclass(frozen=True)
class Binaries:
    prometheus: str
    promtool: str


def _found() -> Binaries | None:
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    return Binaries(prom, tool) if prom and tool else None


def can_apt() -> bool:
    return shutil.which("apt-get") is not None and os.geteuid() == 0


def ensure_prometheus() -> Binaries | None:
    """The binaries, installing them with apt-get if needed; None if impossible.

    Raises when apt-get is usable but the install fails: that is a broken CI
    machine, not a reason to skip.
    """
    found = _found()
    if found or not can_apt():
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=300",
        "install",
        "-y",
        "--no-install-recommends",
        "prometheus",
    ]
    placed_policy = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        placed_policy = True
    try:
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:  # stale or missing package lists: update once, retry
            subprocess.run(
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"],
                env=env,
                capture_output=True,
                timeout=600,
                check=False,
            )
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install prometheus failed:\n{done.stderr[-3000:]}")
    finally:
        if placed_policy:
            POLICY_RC.unlink(missing_ok=True)
    found = _found()
    if found is None:
        raise RuntimeError("apt-get installed prometheus but prometheus/promtool are not on PATH")
    return found


def promtool(binaries: Binaries, *args: str, cwd: Path | None = None) -> str:
    """Run promtool; fail with its output so a broken rule names itself."""
    done = subprocess.run(
        [binaries.promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class PrometheusServer:
    """One Prometheus on loopback with its own port and TSDB, as a context manager."""

    def __init__(self, binaries: Binaries, config: Path, data: Path, port: int, log: Path) -> None:
        self.binaries, self.config, self.data, self.port, self.log = (
            binaries,
            config,
            data,
            port,
            log,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        self.proc = subprocess.Popen(
            [
                self.binaries.prometheus,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError(f"prometheus did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant vector as {sorted labels (without __name__): value}."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return {
            tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): float(
                s["value"][1]
            )
            for s in data["result"]
        }
