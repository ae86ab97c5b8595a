import pandas as pd
from ray import tune

from analysis import load_epochs
from analysis.experiment import learning_curve
from trainables import read_history


def _rows(epochs, **extra):
    return [{"training_iteration": e, "epoch": e, "val_loss": 1.0 / e, **extra} for e in epochs]


def test_rows_missing_from_tunes_record_are_taken_from_the_checkpoints_history():
    recorded = pd.DataFrame(_rows([1, 2, 2, 5], time_total_s=1.0, **{"config/lr": 0.1}))  # 2 reported twice
    curve = learning_curve(recorded, _rows(range(1, 6)), config={"lr": 0.1})
    assert curve["training_iteration"].tolist() == [1, 2, 3, 4, 5]
    assert curve["config/lr"].tolist() == [0.1] * 5 and curve["val_loss"].tolist() == [1.0 / e for e in range(1, 6)]
    assert curve["time_total_s"].isna().tolist() == [False, False, True, True, False]  # Tune's own columns: its rows only


def test_a_curve_without_history_is_tunes_record_and_without_either_is_empty():
    recorded = pd.DataFrame(_rows([1, 2]))
    assert learning_curve(recorded, [], config={}).equals(recorded)
    assert learning_curve(None, [], config={}).empty
    assert learning_curve(None, _rows([1]), config={"lr": 0.1})["config/lr"].tolist() == [0.1]


def test_each_trials_last_checkpoint_carries_every_row_it_reported(smoke_experiment):
    epochs = load_epochs(smoke_experiment)
    for trial in tune.ExperimentAnalysis(str(smoke_experiment)).trials:
        history = pd.DataFrame(read_history(trial.checkpoint))
        recorded = epochs[epochs["trial_id"] == trial.trial_id]
        assert history["epoch"].tolist() == recorded["epoch"].tolist() == list(range(1, len(history) + 1))
        assert history["val_loss"].tolist() == recorded["val_loss"].tolist()
