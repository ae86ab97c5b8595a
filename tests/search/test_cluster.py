"""Running on a Ray cluster: a search through --address spreads over both nodes, with token authentication.

The cluster's nodes listen on 127.0.0.1 only, as a cluster started for testing on one machine should.
"""

import os
import secrets
import subprocess
import sys

import pandas as pd
import pytest

from tests.search.processes import LOOPBACK, descendants, listening

SMOKE = ["-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs", "2", "--name", "remote"]

# Runs in its own process, so that the token lives only in the cluster's environment. It waits until the
# scheduler offers both nodes' CPUs: a node counts as registered before its resources reach the scheduler's
# view, and in that gap (seconds on a loaded machine) every trial fits only on the head (CI once saw that).
CLUSTER_SCRIPT = """
import sys, time
import ray
from ray.cluster_utils import Cluster
from search.connect import init_ray
# Both nodes on 127.0.0.1, where Ray would put the machine's outward address (ray.cluster_utils' default).
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                          "node_ip_address": "127.0.0.1"})
cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
cluster.wait_for_nodes()
init_ray(cluster.address)  # as the command connects: keeping 127.0.0.1
deadline = time.time() + 60
while ray.available_resources().get("CPU", 0) < 2:
    assert time.time() < deadline, ray.available_resources()
    time.sleep(0.2)
ray.shutdown()
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes stdin
cluster.shutdown()
"""


@pytest.fixture
def token_cluster():
    """Two nodes on 127.0.0.1 started with RAY_AUTH_MODE=token; yields (address, token, the cluster's process)."""
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the cluster did not start"
        yield address, token, cluster.pid
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=60)


def test_a_search_spreads_over_both_nodes_and_only_the_token_gets_in(token_cluster, tmp_path):
    address, token, cluster = token_cluster
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
    trials = pd.read_csv(tmp_path / "b" / "remote" / "trials.csv")
    assert len(trials) == 4 and (trials["error"].fillna("") == "").all()
    assert trials["node_id"].nunique() == 2, allowed.stderr[-3000:]  # each node ran trials
    servers = listening(descendants(cluster))  # the GCS, both raylets, their object stores and agents
    assert servers and {host for host, _ in servers} <= LOOPBACK, sorted(servers)
