from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from curator import catalog, config, dedup, hashing
from curator.errors import CatalogError, ConfigError
from tests.conftest import run_cli, snapshot


def test_init_creates_workspace(tmp_path: Path) -> None:
    classes = "alopecia,psoriasis,folliculitis"
    result = run_cli("init", "scalp", "--classes", classes, workspace=tmp_path / "w")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "w").iterdir()} >= {"curator.toml", "catalog.sqlite", "objects"}
    cfg = config.load(tmp_path / "w" / "curator.toml")
    assert cfg.dataset.classes == ("alopecia", "psoriasis", "folliculitis")


def test_init_refuses_existing_workspace(tmp_path: Path) -> None:
    run_cli("init", "scalp", "--classes", "a,b", workspace=tmp_path)
    before = snapshot(tmp_path)
    result = run_cli("init", "other", "--classes", "c,d", workspace=tmp_path)
    assert result.exit_code == 3
    assert result.stderr.strip() == f"Error: {tmp_path} already holds a curator workspace"
    assert snapshot(tmp_path) == before


def test_init_rejects_one_class_and_creates_nothing(tmp_path: Path) -> None:
    result = run_cli("init", "scalp", "--classes", "only", workspace=tmp_path / "w")
    assert result.exit_code == 4
    assert result.stderr.strip() == "Error: curator.toml: 'dataset.classes' needs at least two classes"
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[dataset]\nname="x"\nclasses=["a","b"]\nfoo=1\n', "curator.toml: unknown key 'dataset.foo'"),
        ('[dataset]\nname="x"\nclasses=["a","b"]\n[ingest]\nmax_bytes="big"\n',
         "curator.toml: 'ingest.max_bytes' must be int, not 'big'"),
        ('[dataset]\nname="x"\nclasses=["a","b"]\n[split]\ntrain=0.9\n',
         "curator.toml: 'split' ratios train/validation/test must be positive and sum to 1"),
        ('[dataset]\nname="x"\n', "curator.toml: missing key 'dataset.classes'"),
        ('[bogus]\n[dataset]\nname="x"\nclasses=["a","b"]\n', "curator.toml: unknown key 'bogus'"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "curator.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value) == message


def test_default_toml_round_trips() -> None:
    import tomllib

    cfg = config.from_dict(tomllib.loads(config.default_toml("x", ["a", "b"])))
    assert cfg.ingest.max_bytes == 25_000_000
    assert config.as_dict(cfg)["dataset"]["classes"] == ["a", "b"]


def test_atomic_rolls_back_and_nests(tmp_path: Path) -> None:
    conn = catalog.connect(tmp_path / "c.sqlite")
    with catalog.atomic(conn):
        conn.execute("INSERT INTO clusters (id) VALUES (1)")
        with pytest.raises(RuntimeError), catalog.atomic(conn):
            conn.execute("INSERT INTO clusters (id) VALUES (2)")
            raise RuntimeError
    assert [r[0] for r in conn.execute("SELECT id FROM clusters")] == [1]
    with pytest.raises(sqlite3.IntegrityError), catalog.atomic(conn):
        conn.execute("INSERT INTO clusters (id) VALUES (3)")
        conn.execute("INSERT INTO clusters (id) VALUES (1)")
    assert [r[0] for r in conn.execute("SELECT id FROM clusters")] == [1]


def test_migration_is_atomic_with_its_record(tmp_path: Path) -> None:
    conn = catalog.connect(tmp_path / "c.sqlite")

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    newest = catalog.MIGRATIONS[-1].version
    for rebuilds in (False, True):
        broken_one = catalog.Migration(newest + 1, "broken", broken, rebuilds_tables=rebuilds)
        with pytest.raises(RuntimeError):
            catalog.migrate(conn, [*catalog.MIGRATIONS, broken_one])
        assert catalog.schema_version(conn) == newest
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name='half_done'").fetchone() is None
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_lazy_pixel_keys_migration_keeps_every_row(tmp_path: Path) -> None:
    """A catalog from before migration 2 (pixel keys on every image, hashes as rows) gains
    fingerprints, and hashes in one column where they are exactly today's views."""
    conn = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None)
    catalog.migrate(conn, catalog.MIGRATIONS[:1])
    hashes = {"phash": 2**63 + 5, "phash_mirror": 7}  # 'a': hashed with other views than today's
    full = {name: 1000 + i for i, name in enumerate(hashing.NAMES)}  # 'b': today's views
    with catalog.atomic(conn):
        conn.execute("INSERT INTO clusters (id, representative) VALUES (1, 'a')")
        for sha, values in (("a", hashes), ("b", full)):
            conn.execute(
                "INSERT INTO images (sha256, pixel_sha256, width, height, format, bytes, cluster_id,"
                " created_at) VALUES (?, ?, 64, 48, 'JPEG', 10, 1, ?)",
                (sha, "px-" + sha, "t-" + sha),
            )
            conn.executemany(
                "INSERT INTO image_hashes (sha256, name, value) VALUES (?, ?, ?)",
                [(sha, name, hashing.to_signed(value)) for name, value in values.items()],
            )
        conn.execute(
            "INSERT INTO label_events (sha256, annotator, label, action, at)"
            " VALUES ('a', 'me', 'x', 'label', 't')"
        )
    conn.close()
    conn = catalog.connect(tmp_path / "c.sqlite")
    assert catalog.schema_version(conn) == max(m.version for m in catalog.MIGRATIONS)
    row = conn.execute("SELECT * FROM images WHERE sha256 = 'a'").fetchone()
    assert (row["sha256"], row["pixel_sha256"], row["width"], row["cluster_id"]) == ("a", "px-a", 64, 1)
    # Migration 3: every image hashed before it was hashed from RGB.
    assert [r[0] for r in conn.execute("SELECT hashed_from FROM images ORDER BY sha256")] == ["rgb", "rgb"]
    assert row["fingerprint"] == hashing.fingerprint(64, 48, hashes)
    assert row["hashes"] is None
    row = conn.execute("SELECT * FROM images WHERE sha256 = 'b'").fetchone()
    assert hashing.unpack_hashes(row["hashes"]) == full
    assert row["fingerprint"] == hashing.fingerprint(64, 48, full)
    assert [r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM image_hashes")] == ["a"]
    assert dedup.stored_hashes(conn) == {"a": hashes, "b": full}
    assert conn.execute("SELECT COUNT(*) FROM label_events").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):  # still enforced against the rebuilt table
        conn.execute("INSERT INTO image_hashes (sha256, name, value) VALUES ('nope', 'phash', 1)")


def test_newer_catalog_is_refused(tmp_path: Path) -> None:
    conn = catalog.connect(tmp_path / "c.sqlite")
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    with pytest.raises(CatalogError, match="newer than this curator understands"):
        catalog.migrate(conn)


def test_zero_redirects_is_allowed_like_the_flag_but_negative_is_not(tmp_path: Path) -> None:
    base = '[dataset]\nname="x"\nclasses=["a","b"]\n[ingest]\n'
    path = tmp_path / "curator.toml"
    path.write_text(base + "max_redirects = 0\n")
    assert config.load(path).ingest.max_redirects == 0
    path.write_text(base + "max_redirects = -1\n")
    with pytest.raises(ConfigError, match="'ingest.max_redirects' must be 0 or more"):
        config.load(path)


def test_select_in_takes_more_keys_than_one_statement_and_then_the_params(tmp_path: Path) -> None:
    conn = catalog.connect(tmp_path / "c.sqlite", migrate_schema=False)
    conn.execute("CREATE TABLE t (k INTEGER, parity INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(k, k % 2) for k in range(1500)])
    keys = list(range(1200))  # three statements of at most 500
    rows = catalog.select_in(conn, "SELECT k FROM t WHERE k IN ({marks}) AND parity = ?", keys, 1)
    assert sorted(row[0] for row in rows) == [k for k in keys if k % 2 == 1]
    assert catalog.select_in(conn, "SELECT k FROM t WHERE k IN ({marks})", []) == []
