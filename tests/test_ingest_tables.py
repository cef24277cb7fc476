"""Tables as sources: a Fitzpatrick17k-shaped CSV served from the loopback image server,
ingested with a column mapping, labelled and released; every column arrives in the
release's parquet (read back with ``datasets.load_dataset``), manifest and card. Bad
mappings are one line and leave the workspace as it was; a row without a locator gets an
outcome of its own.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from curator import provenance
from curator.errors import InputError
from curator.ingest import tables
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot
from tests.imageserver import ImageServer, Reply
from tests.test_card import card_table
from tests.test_release import CHEAP_PREPROCESS, build, manifest

COLUMNS = ("locator=url,hint=label,group=case_id,licence=license,diagnosis=dx_type,body_site=site,"
           "fitzpatrick=fitzpatrick_scale")
DX = ["histo", "follow_up", "consensus", "confocal"]
DIAGNOSIS_MAP = ('\n[ingest.diagnosis_map]\nhisto = "histopathology"\nfollow_up = "clinical"\n'
                 'consensus = "consensus"\n')


@dataclass
class Released:
    ws: Path
    rows: list[dict[str, str]]  # the CSV's rows, as written
    urls: dict[str, str]  # url -> the CSV row's case_id
    ingest_stderr: str
    sources: dict[str, sqlite3.Row]
    warnings: list[str]  # of the release build


def write_table(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


def fitzpatrick_rows(server: ImageServer, n: int) -> list[dict[str, str]]:
    """``n`` rows of distinct generated photos, classes in turn, every second row licensed;
    two photos per case (a patient group), Fitzpatrick types 1-6 and one -1 (Fitzpatrick17k's
    "not known"), and one row with an empty url."""
    rows = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        url = server.route(f"/img/{i}.jpg", Reply(body=data.jpeg(data.photo(100 + i, label))))
        rows.append({
            "url": url, "label": label, "fitzpatrick_scale": "-1" if i == 5 else str(1 + i % 6),
            "md5hash": f"{i:032x}",
            "license": "cc-by-4.0" if i % 2 == 0 else "", "case_id": f"case-{i // 2:03d}",
            "dx_type": DX[i % len(DX)], "site": "scalp" if i % 3 else "",
        })
    rows.append({**rows[0], "url": "", "case_id": "case-empty", "md5hash": "f" * 32})
    return rows


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    root = tmp_path_factory.mktemp("tables")
    with ImageServer() as server:
        ws = root / "ws"
        assert run_cli("init", "derm", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
        with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
            fh.write(CHEAP_PREPROCESS + DIAGNOSIS_MAP)
        rows = fitzpatrick_rows(server, 18)
        write_table(root / "fitzpatrick17k.csv", rows)
        result = run_cli("ingest", str(root / "fitzpatrick17k.csv"), "--columns", COLUMNS, workspace=ws)
        assert result.exit_code == 0, result.output
    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    conn = sqlite3.connect(ws / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    sources = {r["locator"]: r for r in conn.execute("SELECT * FROM sources")}
    conn.close()
    built = build(ws)
    urls = {r["url"]: r["case_id"] for r in rows if r["url"]}
    yield Released(ws, rows, urls, result.stderr, sources, built.warnings)


def test_every_row_is_a_source_and_the_empty_locator_is_rejected_alone(released: Released) -> None:
    assert len(released.sources) == len(released.rows)
    empty = [r for r in released.sources.values() if r["reason"] == "empty-locator"]
    assert len(empty) == 1 and empty[0]["outcome"] == "rejected" and empty[0]["group_id"] == "case-empty"
    assert empty[0]["locator"].endswith("fitzpatrick17k.csv row 19")
    assert released.ingest_stderr.count("empty locator") == 1
    stored = [r for r in released.sources.values() if r["outcome"] == "stored"]
    assert len(stored) == len(released.rows) - 1


def test_catalog_keeps_each_rows_provenance(released: Released) -> None:
    for row in released.rows:
        if not row["url"]:
            continue
        src = released.sources[row["url"]]
        assert src["hint"] == row["label"] and src["group_id"] == row["case_id"]
        assert src["licence"] == (row["license"] or None)
        assert src["diagnosis"] == row["dx_type"] and src["body_site"] == (row["site"] or None)
        assert src["collection"] == "fitzpatrick17k.csv"
        assert src["fitzpatrick"] == row["fitzpatrick_scale"] and src["monk"] is None
        assert json.loads(src["metadata"]) == {"md5hash": row["md5hash"]}


def test_every_column_arrives_in_the_release_parquet_with_its_type(released: Released,
                                                                    tmp_path: Path) -> None:
    from datasets import Value, load_dataset

    loaded = load_dataset(str(released.ws / "releases" / "v1.0.0"), cache_dir=str(tmp_path / "cache"))
    by_url = {r["url"]: r for r in released.rows if r["url"]}
    seen = 0
    for split in loaded:
        ds = loaded[split]
        for column in provenance.COLUMNS:
            assert ds.features[column] == Value(provenance.feature_type(column)), column
        assert ds.features["fitzpatrick"] == Value("int8")
        for item in ds.remove_columns("image"):
            if item["augmented_from"] is not None:
                continue
            row = by_url[item["source_url"]]
            seen += 1
            assert item["group_id"] == row["case_id"]
            assert item["licence"] == (row["license"] or None)
            assert item["body_site"] == (row["site"] or None)
            expected = {"histo": "histopathology", "follow_up": "clinical", "consensus": "consensus",
                        "confocal": "unknown"}[row["dx_type"]]
            assert item["diagnosis_provenance"] == expected
            assert item["collection"] == "fitzpatrick17k.csv"
            assert item["fitzpatrick"] == (None if row["fitzpatrick_scale"] == "-1"
                                           else int(row["fitzpatrick_scale"]))
            assert item["monk"] is None
            assert json.loads(item["source_metadata"]) == {"md5hash": row["md5hash"]}
    assert seen == len(by_url)


def test_manifest_rows_and_card_counts_carry_the_provenance(released: Released) -> None:
    m = manifest(released.ws, "1.0.0")
    originals = [r for r in m["rows"] if r["augmented_from"] is None]
    by_url = {r["url"]: r for r in released.rows if r["url"]}
    for r in m["rows"]:
        assert set(provenance.COLUMNS) <= set(r)
        assert r["licence"] == (by_url[r["source_url"]]["license"] or None)
    card = (released.ws / "releases" / "v1.0.0" / "README.md").read_text()
    assert "## Provenance per image" in card
    licensed = sum(1 for r in originals if r["licence"] == "cc-by-4.0")
    assert f"| `licence` | cc-by-4.0 | {licensed} |" in card
    clinical = sum(1 for r in originals if r["diagnosis_provenance"] == "clinical")
    assert f"| `diagnosis_provenance` | clinical | {clinical} |" in card
    counts = Counter(r["body_site"] for r in originals)
    assert f"| `body_site` | *not stated* | {counts[None]} |" in card


def test_skin_types_off_the_scale_are_a_release_warning(released: Released) -> None:
    assert "fitzpatrick values that are not a type 1-6, released as null: '-1' (1)" in released.warnings


def test_unmapped_diagnosis_values_are_a_release_warning(released: Released) -> None:
    confocal = [w for w in released.warnings if "'confocal'" in w]
    assert confocal and confocal[0].startswith("diagnosis values not in [ingest.diagnosis_map], released as "
                                               "'unknown': 'confocal' (")


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Path, Path, ImageServer]]:
    with ImageServer() as server:
        ws = tmp_path / "ws"
        assert run_cli("init", "derm", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
        table = tmp_path / "t.csv"
        write_table(table, fitzpatrick_rows(server, 3))
        yield ws, table, server


@pytest.mark.parametrize(("columns", "line"), [
    ("locator=url,hint=diagnosis_label", "Error: {table}: no column 'diagnosis_label' (mapped to hint); "
     "columns: url, label, fitzpatrick_scale, md5hash, license, case_id, dx_type, site"),
    ("locator=url,colour=label", "Error: --columns: unknown field 'colour' (fields: locator, hint, group, "
     "licence, attribution, diagnosis, body_site, fitzpatrick, monk)"),
    ("locator=url,hint", "Error: --columns: 'hint' is not a field=COLUMN pair"),
    ("hint=label", "Error: {table}: the column mapping needs locator=COLUMN (the URL or path column)"),
])
def test_a_bad_mapping_is_one_line_and_changes_nothing(small: tuple[Path, Path, ImageServer], columns: str,
                                                       line: str) -> None:
    ws, table, server = small
    before = snapshot(ws)
    result = run_cli("ingest", str(table), "--columns", columns, workspace=ws)
    assert result.exit_code == 5
    assert result.stderr.strip() == line.format(table=table)
    assert snapshot(ws) == before
    assert not [h for h in server.hits if h.path.startswith("/img/")]


def test_the_mapping_can_live_in_curator_toml(small: tuple[Path, Path, ImageServer]) -> None:
    ws, table, _ = small
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[ingest.columns]\nlocator = "url"\nhint = "label"\nlicence = "license"\n')
    result = run_cli("ingest", str(table), workspace=ws)
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(ws / "catalog.sqlite")
    got = conn.execute("SELECT COUNT(*) FROM sources WHERE licence = 'cc-by-4.0' AND outcome = 'stored'")
    assert got.fetchone()[0] == 2  # rows 0 and 2 of 3 carry the licence
    conn.close()


def test_an_unknown_field_in_curator_toml_is_named(small: tuple[Path, Path, ImageServer]) -> None:
    ws, table, _ = small
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[ingest.columns]\nlocatr = "url"\n')
    result = run_cli("ingest", str(table), workspace=ws)
    assert result.exit_code == 4
    assert result.stderr.splitlines()[0] == ("Error: curator.toml: 'ingest.columns.locatr' is not a field "
                                             "(locator, hint, group, licence, attribution, diagnosis, "
                                             "body_site, fitzpatrick, monk)")


def test_table_columns_win_over_the_sources_rule(small: tuple[Path, Path, ImageServer]) -> None:
    ws, table, server = small
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(CHEAP_PREPROCESS + '\n[[sources]]\nprefix = "127.0.0.1"\nlicense = "cc-by-nc-4.0"\n'
                 'diagnosis = "atlas-caption"\nbody_site = "head"\n')
    assert run_cli("ingest", str(table), "--columns", "locator=url,hint=label,licence=license,body_site=site",
                   workspace=ws).exit_code == 0
    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    build(ws)
    rows = {r["source_url"]: r for r in manifest(ws, "1.0.0")["rows"] if r["augmented_from"] is None}
    urls = [server.url(f"/img/{i}.jpg") for i in range(3)]
    assert [rows[u]["licence"] for u in urls] == ["cc-by-4.0", "cc-by-nc-4.0", "cc-by-4.0"]
    assert [rows[u]["body_site"] for u in urls] == ["head", "scalp", "scalp"]  # row 0's site is empty
    assert [rows[u]["diagnosis_provenance"] for u in urls] == ["atlas-caption"] * 3  # no diagnosis column


def write_any(path: Path, rows: list[dict[str, object]]) -> None:
    import pyarrow as pa
    from pyarrow import parquet

    if path.suffix == ".tsv":
        write_table(path, rows, "\t")  # type: ignore[arg-type]
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        parquet.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
def test_tsv_jsonl_and_parquet_tables_read_alike(tmp_path: Path, suffix: str) -> None:
    rows = [{"url": "https://a.example/1.jpg", "label": "alopecia", "case_id": "007", "size": 3},
            {"url": "", "label": "psoriasis", "case_id": "008", "size": 4}]
    path = tmp_path / f"t{suffix}"
    write_any(path, rows)
    got = tables.read_table(path, {"locator": "url", "hint": "label", "group": "case_id"})
    assert [(s.locator, s.hint, s.group, s.problem) for s in got] == [
        ("https://a.example/1.jpg", "alopecia", "007", None),
        (f"{path} row 2", "psoriasis", "008", "empty-locator"),
    ]
    assert got[0].provenance is not None and json.loads(got[0].provenance.metadata or "") == {"size": 3}


def test_local_paths_in_a_table_keep_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(data.png(data.photo(1)))
    (tmp_path / "outside.png").write_bytes(data.png(data.photo(2)))
    path = tmp_path / "in" / "t.csv"
    path.write_text("file,label\na.png,alopecia\n../outside.png,psoriasis\n")
    got = tables.read_table(path, {"locator": "file", "hint": "label"})
    assert [(Path(s.locator).name, s.problem) for s in got] == [("a.png", None),
                                                                ("outside.png", "outside-root")]


def test_one_locator_in_two_groups_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("url,case\nhttps://a.example/1.jpg,p1\nhttps://a.example/1.jpg,p2\n")
    with pytest.raises(InputError, match=r"row 2: https://a.example/1.jpg is in group 'p2' here but in group "
                                         r"'p1' on row 1"):
        tables.read_table(path, {"locator": "url", "group": "case"})


def test_diagnosis_provenance_vocabulary() -> None:
    mapping = {"Histo": "histopathology", "follow_up": "clinical"}
    assert provenance.diagnosis_provenance("histo", mapping) == "histopathology"
    assert provenance.diagnosis_provenance(" Consensus ", mapping) == "consensus"
    assert provenance.diagnosis_provenance("confocal", mapping) == "unknown"
    assert provenance.diagnosis_provenance(None, mapping) is None


def test_the_same_photo_in_two_collections_is_counted_per_pair(small: tuple[Path, Path, ImageServer]) -> None:
    ws, table, server = small
    assert run_cli("ingest", str(table), "--columns", "locator=url", workspace=ws).exit_code == 0
    copy = server.route("/isic/a.jpg", Reply(body=data.jpeg(data.photo(100, CLASSES[0]))))  # t.csv's row 1
    new = server.route("/isic/b.jpg", Reply(body=data.jpeg(data.photo(500, CLASSES[1]))))
    other = table.parent / "isic.csv"
    write_table(other, [{"image_url": copy}, {"image_url": new}])
    assert run_cli("ingest", str(other), "--columns", "locator=image_url", workspace=ws).exit_code == 0
    result = run_cli("--json", "status", workspace=ws)
    collections = json.loads(result.stdout)["collections"]
    assert collections == {"images": {"isic.csv": 2, "t.csv": 3},
                           "shared_clusters": [{"collections": ["isic.csv", "t.csv"], "clusters": 1}]}
    text = run_cli("status", workspace=ws).stdout
    assert "Collections (images): isic.csv 2, t.csv 3" in text
    assert "  the same photo in isic.csv and t.csv: 1 cluster" in text


def test_collection_names_what_each_input_belongs_to(small: tuple[Path, Path, ImageServer]) -> None:
    """--collection names a table's and a URL list's collection; status and the card count per collection."""
    ws, table, server = small
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(CHEAP_PREPROCESS)
    before = snapshot(ws)
    result = run_cli("ingest", str(table), "--collection", " ", workspace=ws)
    assert (result.exit_code, result.stderr.strip()) == (5, "Error: --collection: must be a name, without "
                                                             "control characters")
    assert snapshot(ws) == before
    run = ["ingest", str(table), "--columns", "locator=url,hint=label", "--collection", "Fitzpatrick17k"]
    assert run_cli(*run, workspace=ws).exit_code == 0
    urls = [server.route(f"/atlas/{i}.jpg", Reply(body=data.jpeg(data.photo(600 + i, CLASSES[i % 2]))))
            for i in range(3)]
    (table.parent / "atlas.txt").write_text(f"{urls[0]}\t{CLASSES[0]}\n{urls[1]}\t{CLASSES[1]}\n")
    (table.parent / "more.txt").write_text(f"{urls[2]}\t{CLASSES[0]}\n")
    atlas = ["ingest", str(table.parent / "atlas.txt"), "--collection", "atlas"]
    assert run_cli(*atlas, workspace=ws).exit_code == 0
    assert run_cli("ingest", str(table.parent / "more.txt"), workspace=ws).exit_code == 0
    status = json.loads(run_cli("--json", "status", workspace=ws).stdout)["collections"]
    assert status["images"] == {"Fitzpatrick17k": 3, "atlas": 2, "(lists and folders)": 1}
    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    build(ws)
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        hints = conn.execute("SELECT COALESCE(collection, ''), hint FROM sources WHERE outcome = 'stored'")
        expected = Counter(hints.fetchall())
    finally:
        conn.close()
    card = (ws / "releases" / "v1.0.0" / "README.md").read_text()
    rows = {row[0]: row[1:] for row in card_table(card, "collection")}
    assert set(rows) == {"Fitzpatrick17k", "atlas", "*none* (lists and folders)"}
    for name, cells in rows.items():
        key = "" if name.startswith("*none*") else name
        per_class = [expected[(key, c)] for c in CLASSES]
        assert cells == [str(sum(per_class)), *map(str, per_class)], name


def test_migration_11_adds_unsupplied_skin_types_to_older_sources(tmp_path: Path) -> None:
    from curator import catalog

    conn = catalog.connect(tmp_path / "catalog.sqlite", migrate_schema=False)
    catalog.migrate(conn, [m for m in catalog.MIGRATIONS if m.version <= 9])
    with catalog.atomic(conn):
        conn.execute("INSERT INTO sources (locator, kind, collection, licence, added_at) "
                     "VALUES ('https://a.example/1.jpg', 'url', 't.csv', 'cc-by-4.0', 'now')")
    assert catalog.migrate(conn)[0] == 11  # then any later ones
    assert conn.execute("SELECT name FROM schema_migrations WHERE version = 11").fetchone()[0] == (
        "supplied Fitzpatrick and Monk skin types per source")
    assert [tuple(r) for r in conn.execute("SELECT collection, licence, fitzpatrick, monk FROM sources")] == [
        ("t.csv", "cc-by-4.0", None, None)]
    conn.close()


@pytest.mark.parametrize(("value", "scale", "read"), [
    ("3", "fitzpatrick", 3), ("III", "fitzpatrick", 3), ("type iv", "fitzpatrick", 4),
    ("6.0", "fitzpatrick", 6), ("-1", "fitzpatrick", None), ("7", "fitzpatrick", None),
    ("VII", "fitzpatrick", None), ("light", "fitzpatrick", None), ("10", "monk", 10), ("X", "monk", 10),
    ("11", "monk", None), (None, "monk", None),
])
def test_supplied_skin_types_read_as_a_type_on_their_scale(value: str | None, scale: str,
                                                           read: int | None) -> None:
    assert provenance.skin_type(value, scale) == read
