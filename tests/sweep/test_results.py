"""The study's picks from a sweep's trial rows: extremes, with ties going to the higher F1."""

from pathlib import Path

from qatune.sweep.results import TrialRow, format_table, picks, to_csv


def row(name: str, state: str = "complete", **metrics) -> dict:
    return {"name": name, "state": state, "train_loss": None, "eval_loss": None, "correct": None, "f1": None, **metrics}


def test_picks_extremes_and_ties():
    rows = [
        row("a", train_loss=1.1, eval_loss=6.2, correct=122, f1=40.0),
        row("b", train_loss=2.8, eval_loss=3.9, correct=255, f1=61.0),
        row("c", train_loss=2.9, eval_loss=4.0, correct=255, f1=63.5),
        row("d", state="pruned", train_loss=0.5, correct=999, f1=99.0),
    ]  # unfinished trials never win
    chosen = {k: r.name for k, r in picks([TrialRow.from_dict(r) for r in rows]).items()}
    assert chosen == {"lowest_train_loss": "a", "most_correct": "c", "best_f1": "c", "lowest_eval_loss": "b"}
    assert picks([TrialRow.from_dict(row("x", state="fail"))]) == {}


def test_table_and_csv_show_every_row():
    rows = [row("a", f1=40.0, correct=3), row("b", f1=None, correct=None)]
    text = format_table(rows, ["name", "f1", "correct"]).splitlines()
    assert text[0].split() == ["name", "f1", "correct"] and text[2].split() == ["b", "-", "-"]
    from qatune.report.document import Table, to_markdown

    report = to_markdown([Table(["f1"], [[40.0], [1 / 3]])], Path("."))
    assert text[1].split()[1] == "40" and "| 40 |" in report and "| 0.3333 |" in report  # one number format
    assert to_csv(rows, ["name", "f1"]).splitlines() == ["name,f1", "a,40.0", "b,"]


def test_a_trial_another_worker_is_still_drawing_has_no_settings_yet():
    """Two workers share a storage: the other's new trial may hold some of its parameters only (Optuna
    draws them one at a time); reading the sweep then must not fail (it once raised KeyError)."""
    import optuna

    from qatune.sweep.results import trial_rows
    from qatune.sweep.spec import parse_sweep

    spec = parse_sweep(
        {
            "method": "grid",
            "metric": {"name": "exact_match", "goal": "maximize"},
            "parameters": {"learning_rate": {"values": [1e-4, 1e-3]}, "train_batch_size": {"values": [8, 16]}},
        }
    )
    study = optuna.create_study()
    drawing = study.ask()
    drawing.suggest_categorical("learning_rate", [1e-4, 1e-3])  # train_batch_size not drawn yet
    done = study.ask()
    for name, choices in (("learning_rate", [1e-4, 1e-3]), ("train_batch_size", [8, 16])):
        done.suggest_categorical(name, choices)
    (first, second) = trial_rows(study.get_trials(deepcopy=False), spec)
    assert first.params == {"learning_rate": None, "train_batch_size": None}
    assert second.params["train_batch_size"] in (8, 16) and second.params["learning_rate"] in (1e-4, 1e-3)
