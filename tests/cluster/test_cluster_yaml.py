"""cluster.yaml: valid for Ray's launcher, dashboard on localhost, token authentication on every node."""

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_matches_the_schema_ray_ships(config):
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)


def test_dashboard_stays_on_localhost(config):
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start


def test_every_node_starts_with_token_authentication(config):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in config[key] if " start " in c)
        assert "RAY_AUTH_MODE=token" in start and "RAY_AUTH_TOKEN_PATH=" in start, key
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_nodes_install_the_project_with_the_readme_command(config):
    assert any("make install" in c for c in config["setup_commands"])
    assert "make install" in (ROOT / "README.md").read_text()


def test_head_runs_no_trial_and_workers_have_gpus(config):
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0
    assert any(t.get("resources", {}).get("GPU", 0) >= 1 and t["max_workers"] > t["min_workers"] for t in types.values())
