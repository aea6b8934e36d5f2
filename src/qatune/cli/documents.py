"""`qatune index`: a document collection made askable (the CLI side only)."""

from __future__ import annotations

import argparse

from qatune.cli.common import Parser, answerer_for, emit, int_in
from qatune.errors import ConfigError, DataError


def add_index_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "index",
        parents=[common],
        help="index a folder of documents (text, Markdown, HTML, PDF) so `ask --index` can answer from them",
        description="Read files and folders (recursively) of plain text, Markdown, HTML and PDF, cut them into "
        "passages the reader's window holds, and build a retrieval index: BM25 and all-MiniLM-L6-v2 "
        "embeddings, fused. Run it again on the same paths to update the index: only changed files are "
        "read and embedded again, files deleted under those paths drop out, files indexed from other paths stay. "
        "Files that cannot be read are skipped and named. The index is a folder, or a PostgreSQL database that "
        "several servers read and several writers update (--output postgresql://...).",
        epilog="examples:\n  qatune index docs/ --output docs.idx && qatune ask --index docs.idx --model runs/minilm "
        '--question "What does the warranty cover?"\n'
        "  qatune index docs/ --output postgresql://user:password@host/db   (needs pip install 'qatune[postgres]')",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and folders to index")
    p.add_argument(
        "--output",
        required=True,
        help="the index: a folder (new, empty, or an index to update; swapped in whole) or a PostgreSQL URL "
        "(postgresql://...; updated in one transaction)",
    )
    p.add_argument(
        "--max-words",
        type=int_in(20, 2000),
        default=150,
        help="longest passage in words (default: 150, about 200 tokens: what a 256-token window holds)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="index everything anew: replace a non-empty --output folder that is not an index, or empty the "
        "index (qatune's own tables only, in a database)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def cmd_index(args: argparse.Namespace) -> int:
    from qatune.documents.build import build_index

    summary = build_index(
        args.paths, args.output, max_words=args.max_words, overwrite=args.overwrite, progress_bar=not args.quiet
    )
    if args.json:
        emit(summary.to_dict())
        return 0
    print(
        f"indexed {summary.output} in {summary.seconds} s: it holds {summary.files} files, {summary.passages} "
        f"passages; of the files found, {summary.added} new, {summary.updated} changed, {summary.unchanged} "
        f"unchanged"
        + (f" ({summary.pages} PDF pages)" if summary.pages else "")
        + f", {len(summary.skipped)} skipped; {summary.removed} removed, {summary.embedded} passages embedded"
    )
    # the skipped files were each named in a warning: line as they were met
    print(f'ask it with: qatune ask --index {summary.output} --model MODEL --question "..."')
    return 0


def cmd_ask_index(args: argparse.Namespace) -> int:
    """`ask --index`: the question(s) answered from the index's passages, cited."""
    from qatune.documents.backends import open_index
    from qatune.documents.reader import ask_index

    named = (("--context", args.context), ("--context-file", args.context_file), ("--title", args.title))
    given = [flag for flag, value in named if value]
    if given or args.compare_with:
        raise ConfigError(f"--index answers from the index's documents: drop {(given or ['--compare-with'])[0]}")
    if args.question is None:
        raise DataError("no question: pass --question TEXT")
    index = open_index(args.index)
    answerer = answerer_for(args.model, args)
    weight = args.retrieval_weight
    found = ask_index(index, answerer, [args.question], args.top_k, args.passages, args.retrieval, weight)
    result = found[0]
    if args.json:
        emit({**result.to_dict(), "model": args.model, "index": index.info().location})  # a URL's password masked
        return 0
    print(f"Q: {result.question}")
    if not result.found:
        print(f"  not found in these documents (no-answer probability {result.no_answer_probability:.2f})")
    for rank, a in enumerate(result.answers if result.found else result.answers[:1], start=1):
        page = f", page {a.page}" if a.page else ""
        label = f"{rank}." if result.found else "best guess:"
        print(f"  {label} {a.text!r}  p={a.probability:.4f}  {_shown_path(a.file)}{page} [{a.start}:{a.end}]")
        print(f"     {_marked(a.passage, a.passage_start, a.passage_end)}")
    return 0


def _shown_path(file: str) -> str:
    """A file as the user would type it: relative to the working folder when it is below it."""
    import os

    relative = os.path.relpath(file)
    return file if relative.startswith("..") else relative


def _marked(passage: str, start: int, end: int, around: int = 120) -> str:
    """The answer in its passage, marked [[like this]], with up to `around` characters each side."""
    left, right = max(0, start - around), min(len(passage), end + around)
    text = ("..." if left else "") + passage[left:start] + "[[" + passage[start:end] + "]]" + passage[end:right]
    return " ".join((text + ("..." if right < len(passage) else "")).split())
