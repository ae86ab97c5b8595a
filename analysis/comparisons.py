"""The report's account of what the data can tell apart: ties with the best and the strategies' effects.

It shows what the search recorded in ``comparisons.json`` (search.comparison):
paired bootstrap differences on the same held-out images, never recomputed here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.document import Document
from analysis.experiment import Experiment
from search.comparison import effects_frame, effects_in_words, ties_in_words


def comparisons_section(doc: Document, experiment: Experiment) -> None:
    """Ties with the best (with each difference's interval), the tie rule's choice, and the strategy-effect table."""
    doc.heading("What the data can tell apart")
    record = experiment.comparisons
    if record is None:
        doc.paragraph("comparisons.json is missing (the search did not finish, or an older version ran it), so the "
                      "leaderboard's order comes without its uncertainty.")
        return
    doc.paragraph(f"{ties_in_words(record)} Each difference is {record['how']}; {record['draws']} draws.")
    ties = ties_frame(record, experiment.trials)
    if not ties.empty:
        doc.table(ties)
    if record.get("chosen"):
        doc.paragraph(f"Delivered: {record['chosen']}, by the rule --on-ties {record['rule']}: {record['rule_words']}.")
    effects = effects_frame(record)
    if not effects.empty:
        doc.paragraph(f"Imbalance strategies against none, per architecture: the best trial of each strategy minus "
                      f"the best trial of none, on {record['metric']} (for a loss, lower is better).")
        doc.table(effects)
    doc.paragraph(effects_in_words(record))


def ties_frame(record: dict[str, Any], trials: pd.DataFrame) -> pd.DataFrame:
    """The best and the trials compared with it: configuration, mark, best minus it with its interval and p-value."""
    varied = [c for c in trials if c.startswith("config/") and trials[c].astype(str).nunique() > 1]
    config = trials.set_index(trials["trial_id"].astype(str))[varied] if varied else None
    rows = []
    for row in record.get("ties", []):
        diff = row.get("best_minus_this") or {}
        settings = ", ".join(f"{c.removeprefix('config/')} {v}" for c, v in config.loc[row["trial_id"]].items()) \
            if config is not None and row["trial_id"] in config.index else ""
        rows.append({"trial": row["trial_id"], "configuration": settings, "tie": row["tie"],
                     "best minus this": diff.get("estimate"), "95% low": diff.get("low"),
                     "95% high": diff.get("high"), "p": diff.get("p_value")})
    return pd.DataFrame(rows)
