import io

import pytest

from search.preflight import check_local_resources, cluster_shortfall, confirm_trial_count
from trainables import InputError


def test_a_cluster_without_a_node_that_fits_one_trial_gets_a_note():
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}]
    note = cluster_shortfall(nodes, cpus_per_trial=1, gpus_per_trial=0.25, address="head:6379")
    assert note == ("no node of the cluster at 'head:6379' has 1 CPUs and 0.25 GPUs for one trial now (at most 8 CPUs, "
                    "0 GPUs per node); trials wait, with no time limit, until a node that fits joins (an autoscaler "
                    "adds one); Ctrl-C stops and saves the experiment")
    nodes.append({"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}})
    assert cluster_shortfall(nodes, cpus_per_trial=1, gpus_per_trial=0.25, address="head:6379") is None


def test_more_gpus_than_the_machine_has():
    with pytest.raises(InputError) as err:
        check_local_resources(cpus_per_trial=1, gpus_per_trial=2, cpus=4, gpus=1)
    assert str(err.value) == ("--gpus-per-trial 2 is more than the 1 GPUs of this machine, so no trial could start; "
                              "lower it, or run on a cluster with --address")
    check_local_resources(cpus_per_trial=4, gpus_per_trial=0.5, cpus=4, gpus=1)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_is_asked_and_no_means_nothing_starts(capsys):
    with pytest.raises(InputError, match="^not confirmed: space 'big' has 100,000 trials; nothing was started$"):
        confirm_trial_count(100_000, what="space 'big'", yes=False, stdin=_Terminal("n\n"))
    assert capsys.readouterr().err == "space 'big' has 100,000 trials, more than 2,000. Run them all? [y/N] "
    confirm_trial_count(100_000, what="space 'big'", yes=False, stdin=_Terminal("y\n"))
    confirm_trial_count(2_000, what="space 'big'", yes=False, stdin=io.StringIO(""))  # at the threshold: no question
