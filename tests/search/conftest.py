"""Fixtures shared by the search tests: a Ray head left running, and one real command-line search.

Each command-line search costs a new Python with torch, a new Ray and new workers (half a minute on
2 cores), so the tests that read what a plain ``python -m search.run`` prints and writes share one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.search.processes import command_name, descendants, free_port, kill, listening, wait_gone


@pytest.fixture(scope="session")
def other_head():
    """A Ray head started by ``ray start --head``, as a user would leave one running; stopped at the end.

    RAY_TMPDIR gives it its own temp folder (and so its own "latest cluster"
    file), so that other Ray users of this machine never find it.
    """
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "RAY_TMPDIR": temp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    port = free_port()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen([ray_cli, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not (Path(temp) / "ray" / "ray_current_cluster").exists():
            assert time.time() < deadline and head.poll() is None, "ray start --head did not come up"
            time.sleep(0.2)
        yield env, port, head
    finally:
        # Its gcs_server, raylet and workers share its process group; `ray stop` would stop every Ray on the machine.
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        # A killed process keeps its /proc entry until the kernel has torn it down, which takes a moment for
        # Ray's large address spaces (CI once listed four such); only one that a SIGKILL of its own cannot end leaks.
        escaped = wait_gone(temp, seconds=10)
        for pid in escaped:
            kill(pid)
        left = wait_gone(temp, seconds=10)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the head survived SIGKILL: {left}"


@dataclasses.dataclass(frozen=True)
class CommandRun:
    """What one ``python -m search.run`` left: its output, what it listened on, and its experiment folder."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    listening: set[tuple[str, int]]  # (address, port) of every socket the run or its Ray listened on
    own_gcs: bool  # whether a gcs_server ran below the command: it started its own Ray
    folder: Path


@pytest.fixture(scope="session")
def smoke_command(other_head, tmp_path_factory) -> CommandRun:
    """The smoke space from the command line, as a user's shell runs it, beside a Ray head left running.

    The head's RAY_TMPDIR points the run at that head's "latest cluster" file, which ``ray.init()`` used
    to join; RAY_AIR_NEW_OUTPUT, which quiet searches in the test process set, is left out.
    """
    env, _, _ = other_head
    env = {k: v for k, v in env.items() if k != "RAY_AIR_NEW_OUTPUT"}
    storage = tmp_path_factory.mktemp("cli")
    command = [sys.executable, "-m", "search.run", "--space", "smoke", "--storage-path", f"file://{storage}",
               "--name", "cli", "--image-size", "16", "--max-epochs", "1"]
    seen: set[tuple[str, int]] = set()
    own_gcs = False
    start = time.monotonic()
    with open(storage / "out", "w") as out, open(storage / "err", "w") as err:
        driver = subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            while driver.poll() is None:  # sample during the whole run: trial workers come and go
                pids = descendants(driver.pid)
                seen |= listening(pids)
                own_gcs |= any(command_name(pid) == "gcs_server" for pid in pids)
                time.sleep(0.2)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    return CommandRun(driver.returncode, (storage / "out").read_text(), (storage / "err").read_text(),
                      time.monotonic() - start, seen, own_gcs, storage / "cli")
