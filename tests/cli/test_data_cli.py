"""`qatune data convert` and `qatune data split` as a user runs them: the files, the summary, the refusals."""

from __future__ import annotations

import json

from qatune.cli.main import main
from qatune.data.squad import load_file

ROWS = [
    ("Paris is the capital of France. Lyon is big.", "What is the capital of France?", "Paris"),
    ("Paris is the capital of France. Lyon is big.", "Which city is big?", "Lyon"),
    ("Rome is in Italy.", "Where is Rome?", "Italy"),
    ("Oslo is in Norway.", "Where is Oslo?", "Norway"),
    ("Bern is in Switzerland.", "Where is Bern?", ""),
    ("Bern is in Switzerland.", "Where is Zug?", "Zug"),
]


def write_csv(path):
    lines = ["context,question,answer", *(f'"{c}",{q},{a}' for c, q, a in ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_convert_then_split_without_a_shared_context(tmp_path, capsys):
    source, out = write_csv(tmp_path / "faq.csv"), tmp_path / "mine.json"
    assert main(["data", "convert", str(source), "--output", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (
        summary["questions"] == 5 and summary["unanswerable"] == 1 and summary["skipped"] == {"answer not located": 1}
    )
    assert summary["first_skipped"] == {"answer not located": f"{source}: line 7"}
    written = json.loads(out.read_text())
    assert written["version"] == "v2.0" and len(load_file(out)) == 5  # v2: one question has no answer

    folder = tmp_path / "split"
    assert main(["data", "split", str(out), "--dev", "0.4", "--seed", "3", "--output-dir", str(folder)]) == 0
    assert "no context in both" in capsys.readouterr().out
    train, dev = load_file(folder / "train.json"), load_file(folder / "dev.json")
    assert len(train) + len(dev) == 5 and len(dev) >= 2
    assert not {e.context for e in train} & {e.context for e in dev}
    again = tmp_path / "again"
    main(["data", "split", str(out), "--dev", "0.4", "--seed", "3", "--output-dir", str(again)])
    assert (again / "dev.json").read_bytes() == (folder / "dev.json").read_bytes()  # seeded


def test_nothing_is_overwritten_and_options_belong_to_their_action(tmp_path, capsys):
    source, out = write_csv(tmp_path / "faq.csv"), tmp_path / "mine.json"
    out.write_text("precious")
    for argv, words in (
        (["data", "convert", str(source), "--output", str(out)], "the file exists"),
        (["data", "convert", str(source)], "give --output OUT.json"),
        (["data", "convert", str(source), "--output", "x.json", "--dev", "0.1"], "--dev: not an option"),
        (["data", "split", str(source), "--output-dir", str(tmp_path)], "needs --dev FRACTION"),
        (["data", str(source), "--output-dir", str(tmp_path)], "--output-dir: not an option of `qatune data FILE`"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
    assert out.read_text() == "precious"
    (tmp_path / "dev.json").write_text("mine")
    converted = tmp_path / "converted.json"
    assert main(["data", "convert", str(source), "--output", str(converted)]) == 0
    assert main(["data", "split", str(converted), "--dev", "0.5", "--output-dir", str(tmp_path)]) == 2
    assert "dev.json: the file exists" in capsys.readouterr().err
    assert (tmp_path / "dev.json").read_text() == "mine" and not (tmp_path / "train.json").exists()
    inside = tmp_path / "mine"
    inside.mkdir()
    (inside / "train.json").write_bytes(converted.read_bytes())
    argv = ["data", "split", str(inside / "train.json"), "--dev", "0.5", "--output-dir", str(inside), "--overwrite"]
    assert main(argv) == 2 and "is the input file" in capsys.readouterr().err  # --overwrite or not
    assert (inside / "train.json").read_bytes() == converted.read_bytes() and not (inside / "dev.json").exists()
