"""A local run is local: it starts its own Ray, never joins one already running, and listens on 127.0.0.1 only."""

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from search.connect import DRIVER_MALLOC_ARENAS, check_address, limit_malloc_arenas
from trainables import InputError

SMOKE = [sys.executable, "-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs", "1", "--verbose",
         "--name", "local"]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in found]
        found.update(children)
        frontier = children
    return found


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by ``pids``, from /proc/net/tcp{,6}."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # the process ended meanwhile
            continue
    listening = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                listening.add((_address(fields[1].split(":")[0], family), int(fields[1].split(":")[1], 16)))
    return listening


def _address(hex_ip: str, family: int) -> str:
    raw = bytes.fromhex(hex_ip)
    # /proc prints each 32-bit word in host (little-endian) order
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, raw)


@pytest.fixture(scope="module")
def other_head():
    """A Ray head started by ``ray start --head``, as a user would leave one running; stopped at the end.

    RAY_TMPDIR gives it its own temp folder (and so its own "latest cluster"
    file), so that other Ray users of this machine never find it.
    """
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "RAY_TMPDIR": temp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    port = _free_port()
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
        escaped = _wait_gone(temp, seconds=10)
        for pid in escaped:
            _kill(pid)
        left = _wait_gone(temp, seconds=10)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the head survived SIGKILL: {left}"


def _wait_gone(text: str, seconds: float) -> list[int]:
    """Wait up to ``seconds`` for every live process mentioning ``text`` to end; those still there."""
    deadline = time.time() + seconds
    while (left := _pids_mentioning(text)) and time.time() < deadline:
        time.sleep(0.2)
    return left


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # ended meanwhile
        pass


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (the head's temp folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # ended meanwhile
        return ""


def test_local_run_does_not_join_a_running_cluster_and_listens_on_loopback_only(other_head, tmp_path):
    """Regression: without --address, ray.init() joined the cluster that `ray start --head` had left running."""
    env, port, head = other_head
    with open(tmp_path / "err", "w") as err:
        driver = subprocess.Popen(SMOKE + ["--storage-path", str(tmp_path)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=err, start_new_session=True)
        seen: set[tuple[str, int]] = set()
        own_gcs = False
        try:
            while driver.poll() is None:  # sample during the whole run: trial workers come and go
                pids = _descendants(driver.pid)
                seen |= _listening(pids)
                own_gcs |= any(_command_name(pid) == "gcs_server" for pid in pids)
                time.sleep(0.2)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    stderr = (tmp_path / "err").read_text()
    assert driver.returncode == 0, stderr[-3000:]
    assert "Started a local Ray instance" in stderr and "Connecting to" not in stderr
    assert own_gcs, "the run did not start its own GCS"
    assert seen, "no listener found: the check saw nothing"
    assert {address for address, _ in seen} <= LOOPBACK, sorted(seen)
    assert ("127.0.0.1", port) not in seen and (tmp_path / "local" / "trials.csv").exists()


def test_an_address_that_answers_but_is_not_ray_is_one_line(capsys, tmp_path):
    """Regression: a live port that was not Ray's made ray.init retry for minutes, deaf to SIGTERM."""
    from search.run import main

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def answer_like_ssh():
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.recv(1024)
        conn.close()

    threading.Thread(target=answer_like_ssh, daemon=True).start()
    try:
        started = time.time()
        assert main(["--space", "smoke", "--storage-path", str(tmp_path), "--address", f"127.0.0.1:{port}"]) == 2
        assert time.time() - started < 5
    finally:
        server.close()
    assert capsys.readouterr().err == (
        f"python -m search.run: error: '127.0.0.1:{port}' answers, but not as Ray does (no gRPC handshake within 5 s); "
        "pass the port of the head's GCS (6379 by default) or ray://head:10001 for the Ray client\n")


def test_a_ray_head_passes_the_address_check(other_head):
    _, port, _ = other_head
    check_address(f"127.0.0.1:{port}")  # the GCS answers the HTTP/2 preface


def test_a_silent_port_is_refused_after_the_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()  # accepts, never answers
    try:
        with pytest.raises(InputError, match="answers, but not as Ray does"):
            check_address(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=0.5)
    finally:
        server.close()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_the_driver_caps_its_malloc_arenas_where_glibc_allows():
    assert limit_malloc_arenas(DRIVER_MALLOC_ARENAS) is True
