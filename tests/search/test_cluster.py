"""Running on a Ray cluster: two nodes through --address, and token authentication."""

import os
import secrets
import subprocess
import sys

import pandas as pd
import pytest

SMOKE = ["-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs", "2", "--name", "remote"]


def test_smoke_space_runs_on_both_nodes_of_a_two_node_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        _wait_for_cpus(cluster.address, 2)
        proc = subprocess.run([sys.executable, *SMOKE, "--address", cluster.address, "--storage-path", str(tmp_path)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        cluster.shutdown()
    trials = pd.read_csv(tmp_path / "remote" / "trials.csv")
    assert len(trials) == 4 and (trials["error"].fillna("") == "").all()
    assert trials["node_id"].nunique() == 2, proc.stderr[-3000:]  # each node ran trials


def _wait_for_cpus(address: str, cpus: int) -> None:
    """Wait until the cluster's scheduler offers ``cpus`` CPUs.

    A node counts as registered before its resources reach the scheduler's view; in that gap (seconds
    on a loaded machine) every trial's placement group fits only on the head, and CI once saw all
    four trials run there. Asked from a process of its own: this one may hold a Ray session already.
    """
    script = ("import sys, time, ray; ray.init(address=sys.argv[1], logging_level='ERROR')\n"
              "deadline = time.time() + 60\n"
              "while ray.available_resources().get('CPU', 0) < int(sys.argv[2]):\n"
              "    assert time.time() < deadline, ray.available_resources(); time.sleep(0.2)")
    subprocess.run([sys.executable, "-c", script, address, str(cpus)], check=True, capture_output=True, timeout=120)


# Runs in its own process, so that the token lives only in the head's environment.
HEAD_SCRIPT = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes stdin
cluster.shutdown()
"""


@pytest.fixture
def token_head():
    """A head node started with RAY_AUTH_MODE=token; yields (address, token)."""
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    head = subprocess.Popen([sys.executable, "-c", HEAD_SCRIPT], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = head.stdout.readline().strip()
        assert address, "the head node did not start"
        yield address, token
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def test_token_authentication_lets_the_token_in_and_refuses_the_rest(token_head, tmp_path):
    address, token = token_head
    home = tmp_path / "home"  # no ~/.ray/auth_token to fall back on
    home.mkdir()
    base = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token"}
    base.pop("RAY_AUTH_TOKEN", None)
    refused = subprocess.run([sys.executable, *SMOKE, "--address", address, "--storage-path", str(tmp_path / "a")],
                             env=base, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    last = refused.stderr.strip().splitlines()[-1]
    assert "token" in last and "RAY_AUTH_TOKEN" in last and last.startswith("python -m search.run: error:")
    allowed = subprocess.run([sys.executable, *SMOKE, "--address", address, "--storage-path", str(tmp_path / "b")],
                             env={**base, "RAY_AUTH_TOKEN": token}, capture_output=True, text=True, timeout=300)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "b" / "remote" / "trials.csv")) == 4

