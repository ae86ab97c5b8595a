import numpy as np
import pandas as pd

from search import leaderboard, rank_trials, write_csv_atomically
from trainables import tiebroken_objective


def _frame():
    return pd.DataFrame({
        "config/architecture": ["cnn", "cnn_bn", "cnn", "cnn_bn"],
        "config/lr": [0.001] * 4,
        "objective": [1.0, 1.0, -1.2, float("nan")],
        "kept_val_recall": [1.0, 1.0, 0.8, float("nan")],
        "kept_val_balanced_accuracy": [0.90, 0.97, 0.55, float("nan")],
        "kept_val_auc": [0.99, 0.98, 0.60, float("nan")],
        "path": ["a", "b", "c", "d"],
    })


def test_recall_ties_are_broken_by_balanced_accuracy_and_degenerate_trials_rank_last():
    ranked = rank_trials(_frame(), mode="max")
    assert ranked["path"].tolist() == ["b", "a", "c", "d"]


def test_a_full_tie_goes_to_the_lowest_trial_id_whatever_the_row_order():
    """Regression: search.run and analysis read trials in different orders and chose different ties."""
    frame = _frame().assign(trial_id=["t3", "t1", "t2", "t0"], kept_val_balanced_accuracy=[0.9, 0.9, 0.5, None],
                            kept_val_auc=[0.99, 0.99, 0.6, None])
    for shuffled in (frame, frame.iloc[::-1]):
        assert rank_trials(shuffled, mode="max")["trial_id"].iloc[0] == "t1"


def test_leaderboard_shows_only_varied_config_keys():
    board = leaderboard(_frame(), mode="max", top=2)
    assert board.columns[0] == "architecture" and "lr" not in board and len(board) == 2


def test_csv_is_replaced_whole(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("old")
    write_csv_atomically(_frame(), path)
    assert len(pd.read_csv(path)) == 4 and not list(tmp_path.glob(".*tmp"))


def test_the_search_metric_orders_trials_as_the_ranking_does():
    """ASHA and Optuna see one number per trial; it must agree with rank_trials on every pair."""
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({  # recall on 81 positives: many exact ties, as on the digits
        "objective": rng.integers(70, 82, n) / 81 - 2.0 * (rng.random(n) < 0.2),
        "kept_val_balanced_accuracy": rng.integers(150, 200, n) / 200,
        "kept_val_auc": rng.random(n).round(3),
        "trial_id": [f"t{i:03d}" for i in range(n)],
    })
    scores = [tiebroken_objective(r.objective, {"val_balanced_accuracy": r.kept_val_balanced_accuracy,
                                                "val_auc": r.kept_val_auc}, mode="max") for r in frame.itertuples()]
    by_score = frame.assign(score=scores).sort_values(["score", "trial_id"], ascending=[False, True])
    assert by_score["trial_id"].tolist() == rank_trials(frame, mode="max")["trial_id"].tolist()


def test_errored_trials_are_left_out_of_the_ranking():
    """Regression: an errored trial with the best kept metrics was ranked first and chosen."""
    frame = _frame().assign(ended_by=["error", "max_epochs", "patience", "error"],
                            error=["RuntimeError: boom", "", "", "KeyError: 64"])
    assert rank_trials(frame, mode="max")["path"].tolist() == ["b", "c"]
    assert leaderboard(frame, mode="max")["objective"].tolist() == ["1.0000", "failed guard: balanced accuracy 0.55 < 0.60"]
    without_ended_by = frame.drop(columns="ended_by")
    assert rank_trials(without_ended_by, mode="max")["path"].tolist() == ["b", "c"]


def _loss_trials() -> pd.DataFrame:
    """Three trials ranked on val_loss: the lowest loss belongs to a degenerate model (balanced accuracy 0.5)."""
    from search.results import trial_row

    config = {"metric": "val_loss", "min_balanced_accuracy": 0.6}
    rows = [trial_row(trial_id=t, config=config, metrics={"objective": obj, "kept_val_loss": loss,
                                                          "kept_val_balanced_accuracy": bal, "training_iteration": 3,
                                                          "diverged": diverged},
                      error="", path=t, max_epochs=3)
            for t, obj, loss, bal, diverged in (("degenerate", 2.2, 0.2, 0.5, False), ("honest", 0.4, 0.4, 0.8, False),
                                                ("diverged", float("inf"), float("nan"), float("nan"), True))]
    return pd.DataFrame(rows)


def test_a_trial_that_fails_the_guard_ranks_after_every_trial_that_passes_whatever_the_metric():
    from trainables import guarded_objective

    assert guarded_objective({"val_loss": 0.2, "val_balanced_accuracy": 0.5}, metric="val_loss", mode="min",
                             min_balanced_accuracy=0.6) > 2  # demoted for the scheduler too
    trials = _loss_trials().assign(objective=[0.2, 0.4, float("inf")])  # even with a loss left undemoted
    assert rank_trials(trials, mode="min")["trial_id"].tolist() == ["honest", "degenerate", "diverged"]
    words = leaderboard(trials, mode="min")["objective"].tolist()
    assert words[1] == "failed guard: balanced accuracy 0.50 < 0.60" and words[2].startswith("diverged")


def test_the_leaderboard_never_claims_a_guard_that_did_not_act():
    from search.results import guard_in_words, trial_row

    row = trial_row(trial_id="t", config={"metric": "val_specificity_at_recall", "min_balanced_accuracy": 0.6},
                    metrics={"objective": 0.9, "kept_val_balanced_accuracy": 0.5, "training_iteration": 1},
                    error="", path="t", max_epochs=3)
    assert row["guard_passed"] is None
    assert leaderboard(pd.DataFrame([row]), mode="max")["objective"].tolist() == ["0.9000"]
    assert guard_in_words("val_specificity_at_recall", 0.6).startswith("no guard needed")
    assert guard_in_words("val_loss", 0.6).startswith("guard: balanced accuracy >= 0.6")
