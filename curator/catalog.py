"""The catalog: one SQLite file, the single source of truth for a workspace.

Open it with :func:`connect` (WAL, foreign keys, a busy timeout, autocommit mode)
and change it only inside :func:`atomic`, which opens a transaction (or a
SAVEPOINT when nested) and rolls back on any exception. The schema is built by
the registered :data:`MIGRATIONS`; each is applied together with its record in
``schema_migrations`` in one transaction.

Tables (see the migrations for columns):

    sources          one row per input (URL, local path, table or Hub row): provenance + outcome;
                     licence, diagnosis, body site, metadata of tables and Hub rows (migration 9)
    images           one row per distinct image (distinct decoded pixels)
    image_hashes     perceptual hashes by name, of images hashed with other views than today's
    clusters         near-duplicate clusters; each image belongs to exactly one
    label_events     every label decision ever made (append-only); current labels are derived
    image_splits     the sticky split of each image, set by its first release
    releases         built releases
    publishes        where each release was pushed
    baselines        baseline scores per release
    review_*         checks run, findings and reviewers' decisions (migration 6, curator.review)
    annotators       people with a link to `curator serve`, their token's hash (migration 7)
    label_suggestions  the latest model's class probabilities per image (migration 8, curator.suggest)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from curator.errors import CatalogError

_savepoint_ids = itertools.count()


def utcnow() -> str:
    """Timestamps in the catalog: ISO 8601, UTC, microseconds (sortable as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def busy_timeout() -> float:
    """Seconds to wait for another writer: ``$CURATOR_BUSY_TIMEOUT``, else 30."""
    try:
        return max(0.0, float(os.environ.get("CURATOR_BUSY_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def connect(path: Path, *, migrate_schema: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout(), check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    if migrate_schema:
        migrate(conn)
    return conn


@contextlib.contextmanager
def atomic(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One transaction; nested calls become SAVEPOINTs. Any exception rolls back."""
    if conn.in_transaction:
        name = f"sp{next(_savepoint_ids)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]
    # Rebuilds a table that others refer to: foreign keys are switched off around it (SQLite
    # cannot while a transaction is open) and checked before it commits.
    rebuilds_tables: bool = False


def select_in(
    conn: sqlite3.Connection, sql: str, keys: Sequence[object], *params: object
) -> list[sqlite3.Row]:
    """The rows of ``sql``, whose ``{marks}`` is an IN list, for every one of ``keys``:
    500 keys per statement (SQLite caps the variables of one), then ``params``."""
    rows: list[sqlite3.Row] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows += conn.execute(sql.format(marks=",".join("?" * len(chunk))), (*chunk, *params)).fetchall()
    return rows


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the caller's transaction.

    (``executescript`` would COMMIT first, breaking the migration's atomicity.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise CatalogError(f"incomplete SQL statement in migration: {statement.strip()[:60]}")


def _initial_schema(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE clusters (
            id INTEGER PRIMARY KEY,
            representative TEXT            -- images.sha256; set right after the first image joins
        );
        CREATE TABLE images (
            sha256 TEXT PRIMARY KEY,       -- of the original bytes in objects/
            pixel_sha256 TEXT NOT NULL UNIQUE,  -- of the decoded, orientation-normalised RGB pixels
            width INTEGER NOT NULL,        -- after EXIF orientation
            height INTEGER NOT NULL,
            format TEXT NOT NULL,          -- PIL format name: JPEG, PNG, WEBP, GIF, BMP, TIFF
            bytes INTEGER NOT NULL,
            cluster_id INTEGER NOT NULL REFERENCES clusters(id),
            created_at TEXT NOT NULL
        );
        CREATE INDEX images_cluster ON images(cluster_id);
        CREATE TABLE image_hashes (
            sha256 TEXT NOT NULL REFERENCES images(sha256),
            name TEXT NOT NULL,            -- e.g. 'phash', 'phash_mirror'
            value INTEGER NOT NULL,        -- the 64-bit hash as a signed integer
            PRIMARY KEY (sha256, name)
        );
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            locator TEXT NOT NULL UNIQUE,  -- the URL, or the absolute path of a local file
            kind TEXT NOT NULL CHECK (kind IN ('url', 'file')),
            hint TEXT,                     -- label hint from the input line or folder name
            final_url TEXT,
            http_status INTEGER,
            content_type TEXT,
            bytes INTEGER,
            fetched_at TEXT,
            outcome TEXT CHECK (outcome IN ('stored', 'duplicate', 'rejected')),  -- NULL: not yet done
            reason TEXT,                   -- rejection reason, or 'exact'/'near' for duplicates
            transient INTEGER NOT NULL DEFAULT 0,  -- 1 if the rejection may succeed on retry
            sha256 TEXT REFERENCES images(sha256),  -- the image this source resolved to
            robots TEXT,                   -- 'respected' or 'ignored': the opt-out policy used
            added_at TEXT NOT NULL
        );
        CREATE INDEX sources_sha ON sources(sha256);
        CREATE INDEX sources_outcome ON sources(outcome);
        CREATE TABLE label_events (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL REFERENCES images(sha256),
            annotator TEXT NOT NULL,
            label TEXT,                    -- a class name, '__excluded__', or NULL (undone / cleared)
            previous TEXT,                 -- this annotator's label for the image before the event
            action TEXT NOT NULL,          -- 'label', 'exclude', 'undo', 'import', 'hint', ...
            at TEXT NOT NULL
        );
        CREATE INDEX label_events_image ON label_events(sha256, annotator, id);
        CREATE TABLE image_splits (
            sha256 TEXT PRIMARY KEY REFERENCES images(sha256),
            split TEXT NOT NULL CHECK (split IN ('train', 'validation', 'test')),
            first_version TEXT NOT NULL
        );
        CREATE TABLE releases (
            version TEXT PRIMARY KEY,
            parent TEXT,
            created_at TEXT NOT NULL,
            path TEXT NOT NULL,            -- relative to the workspace
            manifest_sha256 TEXT NOT NULL,
            rows INTEGER NOT NULL,
            summary TEXT NOT NULL          -- JSON: counts per split and class, bump reason
        );
        CREATE TABLE publishes (
            id INTEGER PRIMARY KEY,
            version TEXT NOT NULL REFERENCES releases(version),
            target TEXT NOT NULL,          -- 'hub' or 'folder'
            location TEXT NOT NULL,        -- repo id or folder path
            commit_oid TEXT,
            tag TEXT,
            at TEXT NOT NULL,
            detail TEXT                    -- JSON
        );
        CREATE TABLE baselines (
            id INTEGER PRIMARY KEY,
            version TEXT NOT NULL,         -- release version, or 'repo@revision'
            config_hash TEXT NOT NULL,
            metrics TEXT NOT NULL,         -- JSON
            at TEXT NOT NULL
        );
        """
    )


def _lazy_pixel_keys(conn: sqlite3.Connection) -> None:
    """images.pixel_sha256 becomes optional; images.fingerprint and images.hashes are added.

    Hashing every image's full pixels (SHA-256 of ~1 MB per photo) was a fifth of ingest's
    decoding work, and only exact duplicates need it. Equal pixels give equal perceptual
    hashes, so ingest now compares pixel keys only between images with the same fingerprint
    (size plus every perceptual hash) and computes them then. Existing keys are kept;
    fingerprints come from the stored hashes (no image is decoded).

    An image's 22 hashes move from 22 image_hashes rows into one images.hashes value: the
    rows were 22 inserts (and GIL hand-offs) per image on ingest's busiest thread, ~10% of
    the run. Images whose hashes are not exactly today's views keep their rows.
    """
    from curator.hashing import LEGACY_NAMES, fingerprint, pack_hashes, to_unsigned  # numpy: only here

    run_script(
        conn,
        """
        CREATE TABLE images_new (
            sha256 TEXT PRIMARY KEY,       -- of the original bytes in objects/
            fingerprint TEXT NOT NULL,     -- hashing.fingerprint: equal pixels have equal ones
            pixel_sha256 TEXT UNIQUE,      -- hashing.pixel_sha256, once an equal fingerprint needed it
            hashes BLOB,                   -- hashing.pack_hashes; NULL: in image_hashes instead
            width INTEGER NOT NULL,        -- after EXIF orientation
            height INTEGER NOT NULL,
            format TEXT NOT NULL,          -- PIL format name: JPEG, PNG, WEBP, GIF, BMP, TIFF
            bytes INTEGER NOT NULL,
            cluster_id INTEGER NOT NULL REFERENCES clusters(id),
            created_at TEXT NOT NULL
        );
        """,
    )
    hashes: dict[str, dict[str, int]] = {}
    for sha, name, value in conn.execute("SELECT sha256, name, value FROM image_hashes"):
        hashes.setdefault(sha, {})[name] = to_unsigned(int(value))
    rows = conn.execute(
        "SELECT sha256, pixel_sha256, width, height, format, bytes, cluster_id, created_at FROM images"
    ).fetchall()
    names = set(LEGACY_NAMES)  # the views of that time

    def packed(sha: str) -> bytes | None:
        mine = hashes.get(sha, {})
        return pack_hashes(mine) if set(mine) == names else None

    conn.executemany(
        "INSERT INTO images_new (sha256, fingerprint, hashes, pixel_sha256, width, height, format, bytes,"
        " cluster_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(r[0], fingerprint(r[2], r[3], hashes.get(r[0], {})), packed(r[0]), *r[1:]) for r in rows],
    )
    run_script(
        conn,
        """
        DELETE FROM image_hashes WHERE sha256 IN (SELECT sha256 FROM images_new WHERE hashes IS NOT NULL);
        DROP TABLE images;
        ALTER TABLE images_new RENAME TO images;
        CREATE INDEX images_cluster ON images(cluster_id);
        CREATE INDEX images_fingerprint ON images(fingerprint);
        """,
    )


def _hashed_from(conn: sqlite3.Connection) -> None:
    """images.hashed_from: what an image's grey copy and perceptual hashes were taken of.

    'rgb': its decoded RGB pixels, as every image before this migration. 'luma': a JPEG's
    own luma plane, decoded at a reduced scale (hashing.luma_grey), a third of the work
    of a full decode for a 640x480 photo and a seventh for 3000x2000. Equal pixels hashed
    both ways need not have equal fingerprints, so ingest compares pixel keys between
    images hashed the two ways (curator.ingest.run).
    """
    conn.execute("ALTER TABLE images ADD COLUMN hashed_from TEXT NOT NULL DEFAULT 'rgb'")


def _legacy_views(conn: sqlite3.Connection) -> None:
    """Images hashed with the 22 views before flips, quarter turns and turns with every fill
    (hashing.LEGACY_NAMES) keep their hashes, and are read with those names; their
    hashed_from gains LEGACY_SUFFIX. Their fingerprints cover other views than a new
    image's, so ingest compares pixel keys with them as with images hashed the other way
    (curator.ingest.run); ``curator dups --threshold N`` rehashes them with every view.
    """
    from curator.hashing import LEGACY_NAMES, LEGACY_SUFFIX

    conn.execute(
        "UPDATE images SET hashed_from = hashed_from || ? WHERE hashes IS NULL OR length(hashes) = ?",
        (LEGACY_SUFFIX, 8 * len(LEGACY_NAMES)),
    )


def _input_order_and_groups(conn: sqlite3.Connection) -> None:
    """sources.position and sources.group_id.

    ``position``: where the source came in the inputs, counted over every ingest of the
    workspace (the first time it was given). Ingest finishes sources in whatever order
    their downloads and threads complete; cluster ids and representatives are decided
    by positions instead (curator.dedup.settle_clusters), so two workspaces fed the same
    inputs agree. Existing sources take their row id, the order they were recorded in.

    ``group_id``: the patient or lesion the photo belongs to, when an input said so (a
    URL list's third column, ``curator label --import``); the split keeps a group in one
    split (curator.groups).
    """
    run_script(
        conn,
        """
        ALTER TABLE sources ADD COLUMN position INTEGER;
        ALTER TABLE sources ADD COLUMN group_id TEXT;
        UPDATE sources SET position = id;
        CREATE INDEX sources_position ON sources(position);
        """,
    )


def _review(conn: sqlite3.Connection) -> None:
    """Tables of `curator review` (curator.review.findings).

    review_checks: which version and parameters of each check last looked at each image
    (so a run computes only what is missing or changed). review_findings: one row per
    (image, kind, verdict) ever found; ``active`` marks the rows the latest checks still
    find. review_events: reviewers' decisions on findings, append-only like label_events.
    review_features: the off-topic check's feature vector per image.
    """
    run_script(
        conn,
        """
        CREATE TABLE review_checks (
            sha256 TEXT NOT NULL REFERENCES images(sha256),
            check_name TEXT NOT NULL,      -- 'quality', 'privacy', 'off-topic', 'label-issue'
            version TEXT NOT NULL,
            params_hash TEXT NOT NULL,     -- config.config_hash of the check's parameters
            at TEXT NOT NULL,
            PRIMARY KEY (sha256, check_name)
        );
        CREATE TABLE review_findings (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL REFERENCES images(sha256),
            kind TEXT NOT NULL,            -- 'blur', ..., 'face', 'eye', 'off-topic', 'label-issue', 'error'
            verdict TEXT NOT NULL DEFAULT '',  -- beyond the kind: label-issue's suggested label
            score REAL NOT NULL,           -- higher: likelier a real problem
            detail TEXT NOT NULL,          -- JSON
            check_version TEXT NOT NULL,
            params TEXT NOT NULL,          -- JSON: the check's parameters
            active INTEGER NOT NULL DEFAULT 1,  -- 0: the latest run of its check no longer finds it
            found_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX review_findings_active ON review_findings(sha256, kind, verdict) WHERE active = 1;
        CREATE TABLE review_events (
            id INTEGER PRIMARY KEY,
            finding_id INTEGER NOT NULL REFERENCES review_findings(id),
            reviewer TEXT NOT NULL,
            decision TEXT,                 -- 'keep', 'relabel', 'exclude', 'not-a-problem', or NULL (open)
            label TEXT,                    -- the class, for 'relabel'
            previous TEXT,                 -- the decision before this event (NULL: open)
            action TEXT NOT NULL,          -- 'decide' or 'undo'
            at TEXT NOT NULL
        );
        CREATE INDEX review_events_finding ON review_events(finding_id, id);
        CREATE TABLE review_features (
            sha256 TEXT PRIMARY KEY REFERENCES images(sha256),
            version TEXT NOT NULL,
            vector BLOB NOT NULL           -- float32 values
        );
        """,
    )


def _annotators(conn: sqlite3.Connection) -> None:
    """Annotators of `curator serve` (curator.annotators): the sha256 of each one's secret
    token, never the token; ``revoked_at`` set ends their access at once."""
    run_script(
        conn,
        """
        CREATE TABLE annotators (
            name TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,   -- sha256 hex of the token
            created_at TEXT NOT NULL,
            revoked_at TEXT                    -- NULL: active
        );
        """,
    )


def _suggestions(conn: sqlite3.Connection) -> None:
    """Model suggestions at the labeling prompt (curator.suggest): the latest model's class
    probabilities per image, and on each label event whether a suggestion was on screen
    (1 shown, 0 not shown; NULL for events recorded before this migration or outside the
    label prompt and page, such as an import)."""
    run_script(
        conn,
        """
        ALTER TABLE label_events ADD COLUMN suggested INTEGER;
        CREATE TABLE label_suggestions (
            sha256 TEXT PRIMARY KEY REFERENCES images(sha256),
            probabilities TEXT NOT NULL,   -- JSON: class -> probability
            source TEXT NOT NULL,          -- 'cv' (review --with-cv) or the --probabilities file
            at TEXT NOT NULL
        );
        """,
    )


def _provenance(conn: sqlite3.Connection) -> None:
    """What a table or Hub row says about its image (curator.ingest.tables): licence and
    attribution (winning over the [[sources]] rule), the diagnosis as the source words it
    (mapped to the provenance vocabulary at release), body site, the row's other columns as
    JSON, and the collection (table file or Hub repo) the source came from. NULL: not said."""
    run_script(
        conn,
        """
        ALTER TABLE sources ADD COLUMN licence TEXT;
        ALTER TABLE sources ADD COLUMN attribution TEXT;
        ALTER TABLE sources ADD COLUMN diagnosis TEXT;
        ALTER TABLE sources ADD COLUMN body_site TEXT;
        ALTER TABLE sources ADD COLUMN metadata TEXT;
        ALTER TABLE sources ADD COLUMN collection TEXT;
        """,
    )


def _skin_types(conn: sqlite3.Connection) -> None:
    """Skin types a table or Hub row supplies (curator.provenance.SKIN_SCALES), as the source
    writes them (``3``, ``III``, ``-1``); read as types at release. NULL: not supplied."""
    run_script(
        conn,
        """
        ALTER TABLE sources ADD COLUMN fitzpatrick TEXT;
        ALTER TABLE sources ADD COLUMN monk TEXT;
        """,
    )


def _findings_by_image(conn: sqlite3.Connection) -> None:
    """Every finding of an image and kind, active or not, found by index: re-checking an image
    looked its earlier finding up with a scan of the whole table (review.findings._upsert)."""
    run_script(conn, "CREATE INDEX review_findings_by_image ON review_findings(sha256, kind);")


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "lazy pixel keys", _lazy_pixel_keys, rebuilds_tables=True),
    Migration(3, "hashed from luma or rgb", _hashed_from),
    Migration(4, "legacy hash views", _legacy_views),
    Migration(5, "input order and patient groups", _input_order_and_groups),
    Migration(6, "review checks, findings and decisions", _review),
    Migration(7, "annotators of curator serve", _annotators),
    Migration(8, "label suggestions and whether each label event showed one", _suggestions),
    Migration(9, "per-source provenance from tables and Hub datasets", _provenance),
    # 10 was kept for a branch that never used it; it must stay unused (catalogs at 11 would skip it)
    Migration(11, "supplied Fitzpatrick and Monk skin types per source", _skin_types),
    Migration(12, "review findings by image and kind", _findings_by_image),
]


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply every migration newer than the catalog's; return the versions applied."""
    migrations = MIGRATIONS if migrations is None else migrations
    current = schema_version(conn)
    newest = max((m.version for m in migrations), default=0)
    if current > newest:
        raise CatalogError(
            f"catalog schema version {current} is newer than this curator understands ({newest})",
            hint="upgrade curator",
        )
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= current:
            continue
        keys_on = migration.rebuilds_tables and conn.execute("PRAGMA foreign_keys").fetchone()[0]
        if keys_on:
            conn.execute("PRAGMA foreign_keys=OFF")
        try:
            with atomic(conn):
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                migration.apply(conn)
                if migration.rebuilds_tables and conn.execute("PRAGMA foreign_key_check").fetchone():
                    raise CatalogError(f"migration {migration.version} ({migration.name}) broke a reference")
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, utcnow()),
                )
        finally:
            if keys_on:
                conn.execute("PRAGMA foreign_keys=ON")
        applied.append(migration.version)
    return applied
