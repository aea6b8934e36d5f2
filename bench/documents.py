"""Open SQuAD dev: SQuAD v1.1 indexed as documents, each dev question asked without its paragraph.

Each article is one document (a .txt file named by its title, its paragraphs separated by blank lines), indexed by
`qatune index`'s own code (split into passages by qatune). Two collections: the dev articles, and all
train + dev articles. For each dev question: retrieval recall@1/5/10/20 (a retrieved passage holds one
of its answers as typed; and, for comparison with the issue's anchors, overlaps its gold paragraph),
for BM25 alone, dense alone and fused, measured in the same run; queries per second; the index's build
time, size on disk and the process's peak RSS. With --model, also end-to-end EM/F1 (official SQuAD
normalisation) of `ask --index` reading --passages passages, the same model given the gold paragraph
(the upper bound), and the median answer time per question. With --postgres URL, the same index is also
built in that PostgreSQL database (its qatune tables emptied first) and its retrieval measured beside the
folder's.

    python bench/documents.py [--collection dev|all] [--limit N] [--model M --passages 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, result_name, save, table  # noqa: E402
from qatune.documents.records import RETRIEVAL_WEIGHT  # noqa: E402

KS = (1, 5, 10, 20)


def articles(data_dir: Path, collection: str) -> tuple[list[dict], list[dict]]:
    """(articles to index, dev articles whose questions are asked)."""
    dev = json.load(gzip.open(data_dir / "dev-v1.1.json.gz"))["data"]
    if collection == "dev":
        return dev, dev
    train = json.load(gzip.open(data_dir / "train-v1.1-rebuilt.json.gz"))["data"]  # its contexts are the official ones
    return train + dev, dev


def write_documents(folder: Path, docs: list[dict]) -> dict[tuple[str, int], tuple[str, int, int]]:
    """One .txt a article, named by its title as a person would save it ("Super_Bowl_50.txt"; qatune
    indexes a file's name with its passages); returns (title, paragraph number) -> (file, start, end) of
    each paragraph."""
    spans = {}
    for article in docs:
        path = folder / (unquote(article["title"]).replace("/", "-") + ".txt")
        text, at = "", 0
        for i, paragraph in enumerate(article["paragraphs"]):
            at = len(text)
            text += paragraph["context"] + "\n\n"
            spans[(article["title"], i)] = (str(path.resolve()), at, at + len(paragraph["context"]))
        path.write_text(text)
    written = {file for file, _, _ in spans.values()}
    others = [p.name for p in folder.iterdir() if str(p.resolve()) not in written]
    if others:
        sys.exit(f"error: {folder} holds files this run did not write ({', '.join(others[:3])}); give a new --work")
    return spans


def questions(dev: list[dict], spans: dict, limit: int | None) -> list[dict]:
    out = [
        {
            "question": q["question"],
            "answers": [a["text"] for a in q["answers"]],
            "gold": spans[(a["title"], i)],
            "context": p["context"],
        }
        for a in dev
        for i, p in enumerate(a["paragraphs"])
        for q in p["qas"]
    ]
    if not limit or limit >= len(out):
        return out
    return [out[i * len(out) // limit] for i in range(limit)]  # evenly spaced: every article has its share


def recall(index, asked: list[dict], mode: str, backend: str = "folder") -> dict:
    began = time.perf_counter()
    hits = index.search([q["question"] for q in asked], max(KS), mode)
    seconds = time.perf_counter() - began
    holds = {k: 0 for k in KS}
    gold = {k: 0 for k in KS}
    for q, found in zip(asked, hits):
        passages = [h.passage for h in found]
        first_answer = next((r for r, p in enumerate(passages) if any(a in p.text for a in q["answers"])), None)
        file, start, end = q["gold"]
        first_gold = next(
            (r for r, p in enumerate(passages) if p.file == file and p.start < end and start < p.end), None
        )
        for k in KS:
            holds[k] += first_answer is not None and first_answer < k
            gold[k] += first_gold is not None and first_gold < k
    n = len(asked)
    row = {"backend": backend, "mode": mode, "questions_per_s": round(n / seconds, 1)}
    row |= {f"answer@{k}": round(100 * holds[k] / n, 1) for k in KS}
    row |= {f"gold@{k}": round(100 * gold[k] / n, 1) for k in KS}
    return row


def end_to_end(index, asked: list[dict], model: str, passages: int, mode: str, weight: float) -> dict:
    """EM/F1 of the best answer (always taken), the model's no-answer decision on the same questions
    (found, and EM counting "not found" as wrong), its decision on each question asked of the collection
    without the question's own document (truly unanswerable there: "not found" is right), the gold paragraph's
    EM/F1 (the upper bound), and the median time of one `ask --index` question."""
    from qatune.answering.factory import open_answerer
    from qatune.documents.reader import ask_index, cite, joint_query
    from qatune.evaluation.metrics import best_over_golds
    from qatune.hardware import inference_dtype

    answerer, _ = open_answerer(model, dtype=inference_dtype("auto"))
    sums = dict.fromkeys(("em", "f1", "found", "abstaining_em", "gold_em", "gold_f1", "refused_without_gold"), 0.0)
    times = []
    for q in asked:
        began = time.perf_counter()
        (result,) = ask_index(index, answerer, [q["question"]], 1, passages, mode, weight)
        times.append(time.perf_counter() - began)
        e, f = best_over_golds(result.answers[0].text if result.answers else "", q["answers"])
        sums["em"], sums["f1"] = sums["em"] + e, sums["f1"] + f
        sums["found"] += result.found
        sums["abstaining_em"] += e if result.found else 0.0
        direct = answerer.ask(q["context"], q["question"], 1)
        e, f = best_over_golds(direct[0].text if direct else "", q["answers"])
        sums["gold_em"], sums["gold_f1"] = sums["gold_em"] + e, sums["gold_f1"] + f
        others = [h for h in index.search([q["question"]], passages + 90, mode)[0] if h.passage.file != q["gold"][0]]
        hits = others[:passages]
        if not hits:  # every passage retrieved is from its own document: nothing else to be refused on
            sums["refused_without_gold"] += 1
            continue
        prediction = answerer.predict_queries([joint_query(q["question"], hits, 1, weight)])[0][0]
        sums["refused_without_gold"] += not cite(q["question"], hits, prediction, answerer.decoding).found
    n = len(asked)
    row = {"model": model, "passages": passages, "mode": mode, "retrieval_weight": weight}
    row["no_answer_threshold"] = answerer.decoding.null_threshold
    row |= {k: round(100 * v / n, 2) for k, v in sums.items()}
    return row | {"median_ms_per_question": round(1000 * median(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", choices=["dev", "all"], default="dev")
    parser.add_argument("--limit", type=int, help="N dev questions only, evenly spaced over the dev set")
    parser.add_argument("--model", help="also score end to end with this reader")
    parser.add_argument("--passages", type=int, default=10)
    parser.add_argument("--retrieval-weight", type=float, default=RETRIEVAL_WEIGHT, help="as `ask --retrieval-weight`")
    parser.add_argument("--data-dir", default=os.environ.get("QATUNE_DATA_DIR", "../shared/data/squad"))
    parser.add_argument("--postgres", help="also index into this PostgreSQL URL (qatune tables emptied), measure it")
    parser.add_argument(
        "--name", type=result_name, help="result file name under bench/results (default: documents-COLLECTION[-reader])"
    )
    parser.add_argument("--work", help="keep the documents and the index in this folder, and update it next time")
    args = parser.parse_args()
    import torch

    from qatune.documents.build import build_index
    from qatune.documents.index import DocumentIndex
    from qatune.hardware import compute_threads

    torch.set_num_threads(compute_threads().count)
    docs, dev = articles(Path(args.data_dir), args.collection)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.work or scratch
        folder = Path(tmp) / "docs"
        folder.mkdir(parents=True, exist_ok=True)
        spans = write_documents(folder, docs)
        asked = questions(dev, spans, args.limit)
        began = time.perf_counter()
        summary = build_index([folder], Path(tmp) / "idx", progress_bar=True)
        build_seconds = time.perf_counter() - began
        size = sum(p.stat().st_size for p in (Path(tmp) / "idx").rglob("*") if p.is_file())
        index = DocumentIndex.open(Path(tmp) / "idx")
        rows = [recall(index, asked, mode) for mode in ("bm25", "dense", "fused")]
        if args.postgres:
            from qatune.documents.backends import open_index

            began = time.perf_counter()
            build_index([folder], args.postgres, overwrite=True, progress_bar=True)
            postgres_build = round(time.perf_counter() - began, 1)
            shared = open_index(args.postgres)
            rows += [recall(shared, asked, mode, "postgresql") for mode in ("bm25", "dense", "fused")]
        weight = args.retrieval_weight
        reader = end_to_end(index, asked, args.model, args.passages, "fused", weight) if args.model else None
    print(table(rows, list(rows[0])))
    if reader:
        print(json.dumps(reader, indent=2))
    payload = {
        "collection": args.collection,
        "documents": len(docs),
        "paragraphs": sum(len(a["paragraphs"]) for a in docs),
        "passages": summary.passages,
        "questions": len(asked),
        "build_seconds": round(build_seconds, 1),
        "postgres_build_seconds": postgres_build if args.postgres else None,
        "index_mb": round(size / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "retrieval": rows,
        "end_to_end": reader,
        "command": " ".join(["python", "bench/documents.py", *sys.argv[1:]]),
    }
    print(save(args.name or f"documents-{args.collection}" + ("-reader" if args.model else ""), payload))


if __name__ == "__main__":
    main()
