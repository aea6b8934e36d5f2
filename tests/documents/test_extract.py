"""qatune.documents.extract: the text of each format, PDF pages, and why a file cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from qatune.documents.extract import MAX_FILE_BYTES, Extracted, Unreadable, extract, find_files, title


def test_files_are_found_recursively_in_order_without_hidden_or_unknown_ones(docs):
    names = [p.relative_to(docs).as_posix() for p in find_files([docs])]
    assert names == [
        "image.md",
        "latin1.txt",
        "warranty.txt",
        "manuals/battery.md",
        "manuals/broken.pdf",
        "manuals/shipping.html",
        "manuals/specs.pdf",
    ]


def test_a_symlink_loop_and_a_file_given_twice_are_walked_once(docs):
    (docs / "manuals" / "loop").symlink_to(docs, target_is_directory=True)
    found = list(find_files([docs, docs / "warranty.txt"]))
    assert len(found) == len({p.resolve() for p in found}) == 7


def test_text_and_markdown_are_read_as_written(docs, texts):
    path = docs / "manuals" / "battery.md"
    extracted = extract(path, path.read_bytes())
    assert extracted.text == path.read_text() and extracted.page_of(10) is None and texts["battery"] in extracted.text


def test_html_keeps_the_visible_text_only(docs, texts):
    path = docs / "manuals" / "shipping.html"
    text = extract(path, path.read_bytes()).text
    assert texts["shipping"] in text and "Shipping" in text
    assert "ignore me" not in text and "Home | Shop" not in text


def test_a_file_is_titled_by_its_html_title_or_else_its_name(docs):
    path = docs / "manuals" / "shipping.html"
    assert title(path, extract(path, path.read_bytes())) == "Shop help: shipping"
    assert title(Path("Super_Bowl_50.txt"), Extracted("text")) == "Super Bowl 50"
    assert title(Path("notes.html"), extract(Path("notes.html"), b"<p>No head</p>")) == "notes"
    assert title(Path("long.txt"), Extracted("text", title="word " * 100)) == ("word " * 40)[:-1]


def test_pdf_pages_are_numbered(tmp_path, texts, make_pdf):
    path = tmp_path / "specs.pdf"
    extracted = extract(path, make_pdf(texts["pdf_pages"]))
    second = extracted.text.index("keyboard")
    assert extracted.page_of(0) == 1 and extracted.page_of(second) == 2
    assert "thirteen inch panel" in extracted.text


@pytest.mark.parametrize(
    "name, data, why",
    [
        ("broken.pdf", b"%PDF-1.4\nnot really", "not a readable PDF"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00binary", "binary"),
        ("late.txt", b"text " * 4000 + b"\x00 and a NUL past the first 8 KB", "binary"),
        ("huge.txt", b"a" * (MAX_FILE_BYTES + 1), "over 50 MB"),
    ],
)
def test_unreadable_files_say_why(name, data, why):
    with pytest.raises(Unreadable, match=why):
        extract(Path(name), data)


def test_an_encrypted_pdf_is_unreadable(tmp_path, texts, make_pdf):
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(texts["pdf_pages"]))))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(Unreadable, match="encrypted"):
        extract(tmp_path / "locked.pdf", out.getvalue())
