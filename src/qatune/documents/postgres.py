"""The shared document index: the same index in PostgreSQL (`--index postgresql://...`), so several
servers read one index that many writers update.

- Lexical side: PostgreSQL's own full-text parsing (the `english` configuration: Snowball's English
  stemmer, as the folder index's bm25s uses; its stop-word list is longer than bm25s's and drops
  what/who/which/how too, and a word repeated in a question counts once) fills a term table, and BM25
  is scored in SQL with bm25s's formula (Lucene's idf and term weight, k1 1.5, b 0.75). PostgreSQL's
  ts_rank has no inverse document frequency, so ranking by it would let frequent words decide.
- Dense side: each passage's sentence vectors (`documents.dense`) are stored beside it, as float16
  (pgvector is not something every PostgreSQL has). A reader holds the vectors in memory (1.5 kB a
  sentence, as float32) and loads them again only when a writer has changed the index (its generation
  number), so fused retrieval ranks exactly as the embedded index does, not only re-ranks the
  full-text candidates.
- Writers: an update is one transaction under an advisory lock. Readers see the index before it or
  after it, never half of it; a second writer waits for the first instead of losing its update.

Only qatune's own tables (`qatune_index_*`) are read or written; a database may hold other things.
One index a database, or a schema: `?options=-csearch_path%3Dmyschema` in the URL picks another.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from qatune.documents.dense import DIMENSIONS, EMBEDDER, Embedder, search
from qatune.documents.records import FORMAT, FileEntry, Hit, IndexInfo, NewFile, Passage, Side, older_format, rank
from qatune.errors import ConfigError, Unavailable
from qatune.paths import masked_url

SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
CONNECT_SECONDS = 10  # a server that does not answer: an error after this, not a request hanging for minutes
LOCK = 0x7161_7475_6E65  # the advisory lock every writer of an index takes ("qatune")
K1, B = 1.5, 0.75  # BM25's term saturation and length normalisation, as bm25s's defaults
TABLES = """
CREATE TABLE IF NOT EXISTS qatune_index_meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS qatune_index_files (
    file text PRIMARY KEY, sha256 text NOT NULL, size bigint NOT NULL, pages int, passages int NOT NULL,
    title text NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS qatune_index_passages (
    id bigserial PRIMARY KEY, file text NOT NULL REFERENCES qatune_index_files ON DELETE CASCADE,
    page int, start_char int NOT NULL, end_char int NOT NULL, text text NOT NULL,
    length int NOT NULL DEFAULT 0, embedding bytea NOT NULL);
CREATE INDEX IF NOT EXISTS qatune_index_passages_file ON qatune_index_passages (file);
CREATE TABLE IF NOT EXISTS qatune_index_terms (
    term text NOT NULL, passage bigint NOT NULL REFERENCES qatune_index_passages ON DELETE CASCADE,
    tf int NOT NULL, PRIMARY KEY (term, passage));
CREATE INDEX IF NOT EXISTS qatune_index_terms_passage ON qatune_index_terms (passage);
"""
# Files' titles (read with their passages by a model trained with titles) came after format 3's first tables:
# an older index gets the column at its next update, its files untitled until they are indexed again.
TITLES = "ALTER TABLE qatune_index_files ADD COLUMN IF NOT EXISTS title text NOT NULL DEFAULT ''"
HAS_TITLES = (  # the table the queries find (by the search path), not one of that name in any schema
    "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('qatune_index_files') AND attname = 'title' "
    "AND NOT attisdropped"
)
COUNTS = "SELECT (SELECT count(*) FROM qatune_index_files), (SELECT count(*) FROM qatune_index_passages)"
UPSERT = "INSERT INTO qatune_index_meta VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
BM25 = f"""
WITH q AS (SELECT DISTINCT lexeme AS term FROM unnest(to_tsvector('english', %(question)s))),
df AS (SELECT t.term, ln(1 + (%(n)s - count(*) + 0.5) / (count(*) + 0.5))::float8 AS idf
       FROM qatune_index_terms t JOIN q USING (term) GROUP BY t.term)
SELECT t.passage, sum(df.idf * t.tf / (t.tf + {K1} * ({1 - B} + {B} * p.length / %(avgdl)s))) AS score
FROM qatune_index_terms t JOIN df USING (term) JOIN qatune_index_passages p ON p.id = t.passage
GROUP BY t.passage ORDER BY score DESC, t.passage LIMIT %(k)s
"""


def is_database_url(location: str | object) -> bool:
    """Whether an --index/--output names a PostgreSQL index rather than a folder."""
    return isinstance(location, str) and location.startswith(SCHEMES)


@contextmanager
def connect(url: str, flag: str) -> Iterator[Any]:
    """A psycopg connection to `url` (committed at the end of the block, rolled back on an error). A
    missing driver or a URL libpq cannot read is a ConfigError; a server that cannot be reached or that
    fails the work (gone tables, no rights, a lost connection) is Unavailable: the server's fault, not
    the request's. Messages name the URL with its password masked, and never echo the password."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(f"{flag} {masked_url(url)}: needs psycopg; pip install 'qatune[postgres]'") from None
    try:
        conn = psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=CONNECT_SECONDS
        )
    except psycopg.ProgrammingError as exc:  # not a URL libpq understands
        raise ConfigError(f"{flag} {masked_url(url)}: not a PostgreSQL URL ({_said(exc, url)})") from None
    except psycopg.Error as exc:
        raise Unavailable(f"{flag} {masked_url(url)}: cannot connect ({_said(exc, url)})") from None
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        raise Unavailable(f"{flag} {masked_url(url)}: {type(exc).__name__}: {_said(exc, url)}") from None


def _said(exc: Exception, url: str) -> str:
    """The first line of a driver's message, any form of the URL's password in it masked."""
    from urllib.parse import parse_qs, unquote, urlsplit

    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        parts = urlsplit(url)
        secrets = [parts.password or ""] + [v for k, vs in parse_qs(parts.query).items() if "password" in k for v in vs]
    except ValueError:  # a URL urllib cannot split: show none of the message
        return "the driver's message is withheld: it may quote the URL"
    for secret in filter(None, secrets):
        text = text.replace(secret, "***").replace(unquote(secret), "***")
    return text


def read_meta(conn: Any, url: str) -> dict[str, str]:
    """The index's own rows, checked: a qatune index of a format this qatune reads."""
    (table,) = conn.execute("SELECT to_regclass('qatune_index_meta')").fetchone()
    meta = dict(conn.execute("SELECT name, value FROM qatune_index_meta").fetchall()) if table else {}
    shown = masked_url(url)
    if not meta.get("format", "").isdigit():
        raise ConfigError(
            f"--index {shown}: is not a qatune index (no qatune_index_meta tables with a format); "
            f"make one with `qatune index FILES... --output {shown}`"
        )
    if int(meta["format"]) > FORMAT:
        raise ConfigError(
            f"{shown}: an index of format {meta['format']}, made by a newer qatune (this one reads {FORMAT}); "
            f"upgrade qatune or index the files again"
        )
    if meta.get("embedder") != EMBEDDER:
        raise ConfigError(f"{shown}: not a qatune index of this qatune (embedder {meta.get('embedder')!r})")
    return meta


class PostgresIndex:
    """An index in PostgreSQL, opened for reading (module doc): `search` as the embedded index's."""

    def __init__(self, url: str, embedder: Embedder | None = None) -> None:
        self.url = url
        self._embedder = embedder
        self._vectors: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None  # generation, ids, vectors, units
        self._lock = threading.Lock()  # one load of the vectors at a time (the server searches from threads)

    @classmethod
    def open(cls, url: str) -> PostgresIndex:
        """The index at `url`; a database that holds none, or one of a newer format, is one ConfigError."""
        with connect(url, "--index") as conn:
            read_meta(conn, url)
        return cls(url)

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def info(self) -> IndexInfo:
        with connect(self.url, "--index") as conn:
            files, passages = conn.execute(COUNTS).fetchone()
        return IndexInfo(masked_url(self.url), files, passages)

    def search(self, questions: Sequence[str], k: int = 10, mode: str = "fused") -> list[list[Hit]]:
        """The `k` best passages for each question, best first, all read from one snapshot of the index."""
        with connect(self.url, "--index") as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            try:
                meta = read_meta(conn, self.url)
            except ConfigError as exc:  # it was an index when the server opened it: the database's fault now
                raise Unavailable(str(exc)) from None
            n, avgdl = conn.execute("SELECT count(*), coalesce(avg(length), 0) FROM qatune_index_passages").fetchone()
            if not n:
                raise Unavailable(f"{masked_url(self.url)}: the index holds no passages; index some documents")

            def lexical(asked: Sequence[str], wanted: int) -> list[Side]:
                return [self._bm25(conn, q, wanted, n, float(avgdl) or 1.0) for q in asked]

            def dense(asked: Sequence[str], wanted: int) -> list[Side]:
                ids, vectors, units = self._load_vectors(conn, meta)
                return [(ids[rows], scores) for rows, scores in search(vectors, units, self.embedder()(asked), wanted)]

            ranked = rank(questions, k, mode, lexical, dense)
            passages = _passages(conn, sorted({i for found in ranked for i, _ in found}))
        return [[Hit(i, s, *passages[i]) for i, s in found] for found in ranked]

    @staticmethod
    def _bm25(conn: Any, question: str, k: int, n: int, avgdl: float) -> Side:
        rows = conn.execute(BM25, {"question": question, "n": n, "avgdl": avgdl, "k": k}).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64), np.asarray([r[1] for r in rows], dtype=np.float64)

    def _load_vectors(self, conn: Any, meta: dict[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every passage's id, its sentence vectors stacked and their numbers, as of the index's generation
        (loaded again only when it changed). Format 1 held one float32 vector a passage."""
        generation = meta.get("generation", "")
        with self._lock:
            if self._vectors is None or self._vectors[0] != generation:
                rows = conn.execute("SELECT id, embedding FROM qatune_index_passages ORDER BY id").fetchall()
                stored = np.float32 if meta["format"] == "1" else np.float16
                each = [np.frombuffer(bytes(r[1]), dtype=stored).reshape(-1, DIMENSIONS) for r in rows]
                ids = np.asarray([r[0] for r in rows], dtype=np.int64)
                units = np.asarray([len(v) for v in each], dtype=np.int32)
                vectors = np.concatenate(each).astype(np.float32) if each else np.zeros((0, DIMENSIONS), np.float32)
                self._vectors = (generation, ids, vectors, units)
            return self._vectors[1], self._vectors[2], self._vectors[3]


def _passages(conn: Any, ids: list[int]) -> dict[int, tuple[Passage, str]]:
    """The passages `ids` with their files' titles ("" in an index made before titles were kept)."""
    title = "f.title" if conn.execute(HAS_TITLES).fetchone() else "''"
    rows = conn.execute(
        f"SELECT p.id, p.file, p.page, p.start_char, p.end_char, p.text, {title} FROM qatune_index_passages p "
        "JOIN qatune_index_files f ON f.file = p.file WHERE p.id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {r[0]: (Passage(r[1], r[2], r[3], r[4], r[5]), r[6]) for r in rows}


class PostgresWriter:
    """The write side of a PostgreSQL index, for `documents.build`: what it holds, then one update."""

    def __init__(self, url: str, max_words: int, overwrite: bool) -> None:
        self.url, self.max_words, self.overwrite = url, max_words, overwrite
        self.location = masked_url(url)
        with connect(url, "--output") as conn:
            (table,) = conn.execute("SELECT to_regclass('qatune_index_meta')").fetchone()
            self.known = self._known(conn) if table and not overwrite else {}

    def _known(self, conn: Any) -> dict[str, FileEntry]:
        self._check(read_meta(conn, self.url))
        rows = conn.execute("SELECT file, sha256, size, passages, pages FROM qatune_index_files").fetchall()
        return {r[0]: FileEntry(r[1], r[2], 0, r[3], r[4]) for r in rows}

    def _check(self, meta: dict[str, str]) -> None:
        """Passages are cut and embedded alike in one index: other --max-words, or an index of an older format,
        is refused (unless --overwrite)."""
        if int(meta["format"]) < FORMAT and not self.overwrite:
            raise older_format(self.location, int(meta["format"]))
        settings = json.loads(meta.get("settings", "{}"))
        if settings != {"max_words": self.max_words} and not self.overwrite:
            raise ConfigError(
                f"--output {self.location}: its passages were cut with --max-words {settings.get('max_words')}; "
                f"give the same, or --overwrite to index everything again with {self.max_words}"
            )

    def write(self, files: Sequence[NewFile], removed: set[str], unchanged: set[str]) -> IndexInfo:
        """One transaction: drop `removed` and the files being written, insert these, mark a new generation;
        what the index holds after it. Refused if another writer changed a file counted `unchanged`."""
        with connect(self.url, "--output") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
            (table,) = conn.execute("SELECT to_regclass('qatune_index_meta')").fetchone()
            if table is None:  # CREATE ... IF NOT EXISTS would still need rights a second writer may lack
                conn.execute(TABLES)
            elif self.overwrite:  # DELETE, not TRUNCATE: a server's snapshot keeps seeing the old index
                conn.execute("DELETE FROM qatune_index_files")
            elif conn.execute("SELECT 1 FROM qatune_index_meta").fetchone():  # another writer may have come first
                self._check(read_meta(conn, self.url))
            if table is not None and not conn.execute(HAS_TITLES).fetchone():  # ALTER locks out readers: once
                conn.execute(TITLES)
            self._still(conn, unchanged)
            dropped = sorted(removed | {f.key for f in files})
            conn.execute("DELETE FROM qatune_index_files WHERE file = ANY(%s)", (dropped,))
            _insert(conn, files)
            meta = {"format": str(FORMAT), "embedder": EMBEDDER, "settings": json.dumps({"max_words": self.max_words})}
            for name, value in meta.items():
                conn.execute(UPSERT, (name, value))
            # a random token, not a counter: an index dropped and made again must not repeat an old one
            conn.execute(UPSERT, ("generation", secrets.token_hex(16)))
            files_now, passages = conn.execute(COUNTS).fetchone()
        return IndexInfo(self.location, files_now, passages)

    def _still(self, conn: Any, unchanged: set[str]) -> None:
        """The files this run left alone are in the index as it found them (no other writer removed or
        changed them since `known` was read)."""
        if not unchanged:
            return
        rows = conn.execute(
            "SELECT file, sha256 FROM qatune_index_files WHERE file = ANY(%s)", (sorted(unchanged),)
        ).fetchall()
        if dict(rows) != {key: self.known[key].sha256 for key in unchanged}:
            raise ConfigError(
                f"--output {self.location}: another writer changed this index while this update ran; "
                f"run `qatune index` again"
            )


def _insert(conn: Any, files: Sequence[NewFile]) -> None:
    """The files' rows, their passages with vectors, and the passages' terms (parsed by PostgreSQL)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO qatune_index_files (file, sha256, size, pages, passages, title) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(f.key, f.entry.sha256, f.entry.size, f.entry.pages, len(f.passages), f.entry.title) for f in files],
        )
        columns = "file, page, start_char, end_char, text, embedding"
        with cur.copy(f"COPY qatune_index_passages ({columns}) FROM STDIN") as copy:
            for f in files:
                for p, v in zip(f.passages, f.by_passage()):
                    copy.write_row((f.key, p.page, p.start, p.end, p.text, np.asarray(v, np.float16).tobytes()))
    keys = [f.key for f in files]
    conn.execute(  # each passage's terms with its file's title's, as `records.lexical_text` joins them
        "INSERT INTO qatune_index_terms (term, passage, tf) SELECT t.lexeme, p.id, "
        "coalesce(array_length(t.positions, 1), 1) FROM qatune_index_passages p "
        "JOIN unnest(%s::text[], %s::text[]) AS f(file, title) ON f.file = p.file, "
        "unnest(to_tsvector('english', f.title || E'\\n' || p.text)) t",
        (keys, [f.entry.title for f in files]),
    )
    conn.execute(
        "UPDATE qatune_index_passages p SET length = s.total FROM (SELECT passage, sum(tf) AS total "
        "FROM qatune_index_terms WHERE passage IN (SELECT id FROM qatune_index_passages WHERE file = ANY(%s)) "
        "GROUP BY passage) s WHERE p.id = s.passage",
        (keys,),
    )
