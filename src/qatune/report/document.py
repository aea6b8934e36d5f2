"""A small document model (headings, paragraphs, tables, figures, code) rendered to Markdown and HTML.

Written by hand because the report needs exactly two renderings of the same content, and the HTML
must be one self-contained file (figures inlined as data URIs) with no template engine or build step.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qatune.fmt import cell


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Code:
    text: str
    language: str = ""


Block = Heading | Para | Table | Figure | Code


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], folder: Path) -> str:
    """Markdown with figures linked relative to `folder` (where the .md file is written)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(block.text)
        elif isinstance(block, Table):
            if block.caption:
                out.append(f"**{block.caption}**")
            lines = ["| " + " | ".join(block.columns) + " |", "|" + " --- |" * len(block.columns)]
            lines += ["| " + " | ".join(_md_escape(cell(v)) for v in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{block.caption}]({os.path.relpath(block.path, folder)})\n\n*{block.caption}*")
        elif isinstance(block, Code):
            out.append(f"```{block.language}\n{block.text.rstrip()}\n```")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}figure{margin:1em 0 2em}img{max-width:min(100%,860px)}
figcaption,caption{font-style:italic;color:#555;caption-side:top;text-align:left;padding:.3em 0}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:.85em}"""


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page: figures are embedded, so the file can be mailed or archived alone."""
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>"
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):  # `code` spans, as in the Markdown rendering
            out.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(block.text)) + "</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>" for row in block.rows
            )
            caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
            out.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.path.read_bytes()).decode()
            out.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(block.caption)}'>"
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
