from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from curator import catalog, config
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

    with pytest.raises(RuntimeError):
        catalog.migrate(conn, [*catalog.MIGRATIONS, catalog.Migration(2, "broken", broken)])
    assert catalog.schema_version(conn) == 1
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name='half_done'").fetchone() is None


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
