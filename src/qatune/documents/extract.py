"""The text of a document file, with where each PDF page starts, or why it cannot be read.

Plain text and Markdown are read as written (UTF-8; Markdown's markup is few characters and keeps the
offsets into the file exact); HTML is reduced to its visible text with selectolax (a maintained, fast
HTML5 parser); PDF pages are extracted with pypdf, page by page, so a passage knows its page.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown", ".rst")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
PDF_SUFFIXES = (".pdf",)
SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES
MAX_FILE_BYTES = 50_000_000  # a bigger file is skipped: a 50 MB PDF is thousands of pages
MAX_TITLE = 200  # characters of a title kept: it is indexed with every passage of its file
_BLOCKS = "p, div, li, h1, h2, h3, h4, h5, h6, pre, blockquote, td, th, dt, dd, section, article, br, tr"


@dataclass(frozen=True)
class Extracted:
    """A file's text, the character offset where each of its pages starts (none: a file without pages),
    and the title it gives itself (an HTML page's <title>; "" when it has none)."""

    text: str
    page_starts: tuple[int, ...] = ()
    title: str = ""

    def page_of(self, offset: int) -> int | None:
        """The 1-based page holding character `offset`; None for a file without pages."""
        return bisect.bisect_right(self.page_starts, offset) if self.page_starts else None


class Unreadable(Exception):
    """Why a file was skipped (the index counts and names it, and goes on)."""


def find_files(paths: list[Path]) -> Iterator[Path]:
    """The document files under `paths` (files as given; folders recursively, in name order, hidden names
    and symlink loops left out), each once."""
    seen: set[str] = set()
    for root in paths:
        candidates = [root] if not root.is_dir() else _walk(root)
        for path in candidates:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                yield path


def _walk(root: Path) -> Iterator[Path]:
    visited: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop: each real folder once
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(SUFFIXES):
                yield Path(folder) / name  # special files too: the build skips them, named


def extract(path: Path, data: bytes) -> Extracted:
    """The text of the file `path` whose bytes are `data`; Unreadable says why not."""
    if len(data) > MAX_FILE_BYTES:
        raise Unreadable(f"over {MAX_FILE_BYTES // 1_000_000} MB")
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return _pdf(data)
    text = _utf8(data)
    return _html(text) if suffix in HTML_SUFFIXES else Extracted(text)


def title(path: Path, extracted: Extracted) -> str:
    """What a file is about in a few words, indexed with each of its passages (`documents.records`): the
    title it gives itself, else its name (underscores as spaces: "Super_Bowl_50.txt" is "Super Bowl 50")."""
    named = extracted.title or " ".join(path.stem.replace("_", " ").split())
    return named[:MAX_TITLE].strip()


def _utf8(data: bytes) -> str:
    if b"\x00" in data:  # no text file holds one (and no database text column can)
        raise Unreadable("binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None


def _html(text: str) -> Extracted:
    """The visible text of an HTML page (scripts, styles and navigation dropped, one block a paragraph)
    and its <title>."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    head = tree.css_first("title")
    named = " ".join(head.text().split()) if head is not None else ""
    for node in tree.css("script, style, noscript, template, nav, header, footer, svg"):
        node.decompose()
    body = tree.body or tree.root
    if body is None:
        return Extracted("", title=named)
    for node in body.css(_BLOCKS):
        node.insert_after("\n\n")
    lines = (" ".join(line.split()) for line in body.text(separator=" ").split("\n\n"))
    return Extracted("\n\n".join(line for line in lines if line), title=named)


def _pdf(data: bytes) -> Extracted:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Unreadable("an encrypted PDF")
        pages = [(page.extract_text() or "").replace("\x00", " ") for page in reader.pages]
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise Unreadable(f"not a readable PDF ({type(exc).__name__})") from None
    starts, text = [], ""
    for page in pages:
        starts.append(len(text))
        text += page.strip() + "\n\n"
    return Extracted(text, tuple(starts) or (0,))
