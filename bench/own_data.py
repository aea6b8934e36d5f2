"""The own-data example, measured: untuned, SQuAD-tuned, and SQuAD-tuned then fine-tuned on qatune's own
documentation (alone, and with SQuAD mixed in), on the documentation's dev split and on SQuAD dev.

    python bench/own_data.py                       # convert, split, run examples/own-data/study.yaml
    python bench/own_data.py --study-dir runs/studies/own-data --no-run   # only read a finished study

Prints the table of the README ("Your own data: the documentation example") and saves it with the
machine to bench/results/own-data.json. Every figure comes from the study's results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import ROOT, save, table

STUDY = ROOT / "examples" / "own-data" / "study.yaml"
CSV = ROOT / "examples" / "own-data" / "qatune-docs.csv"


def prepare_and_run(work: Path) -> None:
    """The three commands of `make own-data`, with the data under `work`."""
    qatune = [sys.executable, "-m", "qatune.cli"]
    docs = work / "docs.json"
    subprocess.run([*qatune, "data", "convert", str(CSV), "--output", str(docs), "--overwrite"], check=True)
    split = ["data", "split", str(docs), "--dev", "0.2", "--by", "title", "--seed", "0", "--output-dir", str(work)]
    subprocess.run([*qatune, *split, "--overwrite"], check=True)
    subprocess.run([*qatune, "run", str(STUDY)], check=True, cwd=ROOT)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: EM/F1 on the documentation's dev split and on the SQuAD dev slice."""
    compare = results["compare"]
    untuned = compare["untuned"]
    out = [{"model": f"{compare['model']} untuned", "docs EM": untuned["exact_match"], "docs F1": untuned["f1"]}]
    for e in results["experiments"]:
        squad = (e.get("other_evals") or [{}])[0]
        out.append(
            {
                "model": e["name"],
                "docs EM": e["test_eval"]["exact_match"],
                "docs F1": e["test_eval"]["f1"],
                "SQuAD EM": squad.get("exact_match"),
                "SQuAD F1": squad.get("f1"),
                "minutes": round((e.get("seconds") or 0) / 60, 1),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-dir", type=Path, default=ROOT / "runs" / "studies" / "own-data")
    parser.add_argument("--no-run", action="store_true", help="only read the finished study's results.json")
    args = parser.parse_args()
    if not args.no_run:
        prepare_and_run(ROOT / "runs" / "own-data")
    results = json.loads((args.study_dir / "results.json").read_text())
    found = rows(results)
    print(table(found, ["model", "docs EM", "docs F1", "SQuAD EM", "SQuAD F1", "minutes"]))
    first = results["experiments"][0]
    slices = {
        name: {"data": scored["data"], "questions": scored["total"]}
        for name, scored in (("docs_dev", first["test_eval"]), ("squad_dev", first["other_evals"][0]))
    }
    study = {"file": str(STUDY.relative_to(ROOT)), "seconds": results["seconds"], "versions": results["versions"]}
    print(save("own-data", {"study": study, "slices": slices, "rows": found}))


if __name__ == "__main__":
    main()
