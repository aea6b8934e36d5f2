"""Document files made in code for the documents tests (fixtures imported by each test module): text,
Markdown, HTML and PDF (a minimal PDF written by hand), plus bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

WARRANTY = (
    "The warranty covers parts and labour for two years from the date of purchase. It does not cover damage "
    "caused by water, by dropping the device, or by repairs made by anyone other than an authorised service centre."
)
BATTERY = (
    "The battery lasts about nine hours of video playback. Charging it from empty to full takes ninety minutes "
    "with the supplied charger, and the battery keeps eighty percent of its capacity after five hundred cycles."
)
SHIPPING = (
    "Orders are shipped within three working days. Customers in Norway and Iceland pay an extra fee for "
    "delivery, and parcels to islands may take a week longer than the usual five days."
)
PDF_PAGES = [
    "The screen is a thirteen inch panel with a resolution of 2560 by 1600 pixels and a peak brightness of five "
    "hundred nits, bright enough to read outdoors in the shade.",
    "The keyboard is backlit and spill resistant, and its keys travel one point three millimetres when pressed, "
    "which reviewers found comfortable for long typing sessions.",
]


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one text line per page (Helvetica), offsets in its xref table computed."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        content = f"BT /F1 9 Tf 20 700 Td ({text}) Tj ET".encode()
        page_no, content_no = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_no} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_no} 0 R "
            f"/Resources << /Font << /F1 {len(pages) * 2 + 3} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@pytest.fixture
def docs(tmp_path) -> Path:
    """A user's folder of documents: good ones in every format, and some that cannot be read."""
    folder = tmp_path / "docs"
    (folder / "manuals").mkdir(parents=True)
    (folder / "warranty.txt").write_text(f"Warranty\n\n{WARRANTY}\n")
    (folder / "manuals" / "battery.md").write_text(f"# Battery\n\n{BATTERY}\n")
    (folder / "manuals" / "shipping.html").write_text(
        "<html><head><title>Shop help:\n  shipping</title>"
        f"<script>var hidden = 'ignore me';</script></head><body><nav>Home | Shop</nav>"
        f"<h1>Shipping</h1><p>{SHIPPING}</p></body></html>"
    )
    (folder / "manuals" / "specs.pdf").write_bytes(pdf_bytes(PDF_PAGES))
    (folder / "manuals" / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (folder / "latin1.txt").write_bytes("caf\xe9 au lait, cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    (folder / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    (folder / ".hidden.txt").write_text("not indexed")
    (folder / "notes.docx").write_text("not a format qatune reads")
    return folder


@pytest.fixture
def texts() -> dict[str, object]:
    """The documents' own sentences, to look for in what comes back."""
    return {"warranty": WARRANTY, "battery": BATTERY, "shipping": SHIPPING, "pdf_pages": PDF_PAGES}


@pytest.fixture
def make_pdf():
    return pdf_bytes


@pytest.fixture
def pg_index():
    """A PostgreSQL URL whose search path is a fresh, empty schema (dropped after the test): one index."""
    import os
    import uuid

    base = os.environ.get("QATUNE_TEST_POSTGRES")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("CI must start PostgreSQL and set QATUNE_TEST_POSTGRES (see .ci/run)")
        pytest.skip("set QATUNE_TEST_POSTGRES=postgresql://... to test the PostgreSQL index")
    import psycopg

    schema = f"idx_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["folder", "postgresql"])
def index_location(request, tmp_path) -> str:
    """Where a test's index goes, for each backend: a folder, and a PostgreSQL database."""
    return str(tmp_path / "idx") if request.param == "folder" else request.getfixturevalue("pg_index")


@pytest.fixture(scope="session")
def embedder():
    """One embedder for the documents tests (loading it takes seconds)."""
    from qatune.documents.dense import Embedder

    return Embedder()


@pytest.fixture
def opened(embedder):
    """Open an index (folder or URL) for reading with the shared embedder."""
    from qatune.documents.backends import open_index

    def open_with(location):
        index = open_index(location)
        index._embedder = embedder
        return index

    return open_with
