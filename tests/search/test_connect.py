"""A local run is local: it starts its own Ray, never joins one already running, and listens on 127.0.0.1 only."""

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from search.connect import DRIVER_MALLOC_ARENAS, check_address, limit_malloc_arenas
from tests.search.processes import LOOPBACK, command_name, descendants, listening
from trainables import InputError


def test_local_run_does_not_join_a_running_cluster_and_listens_on_loopback_only(smoke_command, other_head):
    """Regression: without --address, ray.init() joined the cluster that `ray start --head` had left running."""
    _, port, _ = other_head
    assert smoke_command.returncode == 0, smoke_command.stderr[-3000:]
    assert smoke_command.own_gcs, "the run did not start its own GCS"
    assert smoke_command.listening, "no listener found: the check saw nothing"
    assert {address for address, _ in smoke_command.listening} <= LOOPBACK, sorted(smoke_command.listening)
    assert ("127.0.0.1", port) not in smoke_command.listening and (smoke_command.folder / "trials.csv").exists()


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


def test_a_run_stuck_connecting_stops_on_the_second_ctrl_c(other_head, tmp_path):
    """A gRPC port of the cluster that is not its GCS (here a raylet's) passes the address check, and ray.init
    retries inside Ray's C++ client: the first Ctrl-C is held until Ray returns (a KeyboardInterrupt there
    used to crash the process), the second stops the command at once, saying that nothing was saved."""
    driver, _ = _connect_to_a_raylet(other_head, tmp_path)
    try:
        assert driver.stdout.readline().startswith("PneumoniaMNIST subsample (embedded")  # Ray comes next
        time.sleep(2)  # inside ray.init, which retries for about 20 s before it gives up
        driver.send_signal(signal.SIGINT)
        time.sleep(1)
        stopped = time.monotonic()
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=60)
        waited = time.monotonic() - stopped
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "gcs_client.cc" not in line]
    assert lines[-2:] == ["python -m search.run: stopping once Ray has started (Ctrl-C again to stop at once)",
                          "python -m search.run: interrupted before any trial started; nothing was saved"], lines
    assert waited < 10, f"the second Ctrl-C took {waited:.0f} s"


def test_a_cluster_that_does_not_take_the_driver_is_given_up_after_the_connect_timeout(other_head, tmp_path):
    driver, port = _connect_to_a_raylet(other_head, tmp_path, "--connect-timeout", "3s")
    try:
        assert driver.stdout.readline().startswith("PneumoniaMNIST subsample (embedded")  # Ray comes next
        started = time.monotonic()
        _, stderr = driver.communicate(timeout=60)
        waited = time.monotonic() - started
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 2, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        f"python -m search.run: error: the Ray cluster at '127.0.0.1:{port}' did not take this driver within 3 s "
        "(--connect-timeout); nothing was saved")
    assert waited < 15, f"gave up after {waited:.0f} s"  # Ray's own retries last about 20 s


def _connect_to_a_raylet(other_head, tmp_path, *flags: str) -> tuple[subprocess.Popen, int]:
    """The smoke space from the command line, pointed at a raylet's gRPC port of ``other_head`` instead of its GCS."""
    env, _, head = other_head
    (raylet,) = [pid for pid in descendants(head.pid) if command_name(pid) == "raylet"]
    port = min(port for _, port in listening({raylet}))
    command = [sys.executable, "-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs", "1",
               "--storage-path", str(tmp_path), "--address", f"127.0.0.1:{port}", *flags]
    return subprocess.Popen(command, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True), port
