"""The old `pipeline("question-answering")` (transformers <= 5.2; removed in 5.3), timed in a side venv.

Run by bench/eval.py with ``--pipeline-python /path/to/venv/bin/python``: this file imports only
transformers and torch (no qatune), reads {model, questions: [{id, question, context}]} from the
JSON file named on the command line, answers every question with the pipeline's defaults
(max_seq_len 384, doc_stride 128, max_answer_len 15 -> set to 30 like the other paths, top_k 1)
and prints {seconds, predictions, transformers} as one JSON line. Model loading is not timed.

    python -m venv /tmp/tf52 && /tmp/tf52/bin/pip install torch==2.13.0 transformers==5.2.0
"""

import json
import sys
import time

import torch
import transformers
from transformers import pipeline


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    qa = pipeline("question-answering", model=job["model"], tokenizer=job["model"], device=-1)
    items = job["questions"]
    began = time.perf_counter()
    outputs = qa(
        question=[q["question"] for q in items], context=[q["context"] for q in items], max_answer_len=30, top_k=1
    )
    seconds = time.perf_counter() - began
    outputs = outputs if isinstance(outputs, list) else [outputs]
    predictions = {q["id"]: out["answer"] for q, out in zip(items, outputs)}
    print(json.dumps({"seconds": seconds, "predictions": predictions, "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
