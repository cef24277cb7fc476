"""The dataset card: YAML the Hub parses back as written, a complete body, the baseline section."""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

from curator import preprocess, skintone, store
from curator.diff import Diff
from curator.errors import ReleaseError
from dataset_card import (
    BASELINE_END,
    BASELINE_START,
    CardFacts,
    SourceFacts,
    render,
    replace_baseline_section,
)
from dataset_card.card import size_category
from dataset_card.datasheet import NOT_PROVIDED, QUESTIONS, missing_answers
from tests.conftest import CLASSES, run_cli
from tests.test_release import CHEAP_PREPROCESS, build, make_workspace, write_images


def facts(**changes: object) -> CardFacts:
    splits = {
        "train": {"rows": 12, "originals": 9, "augmented": 3,
                  "per_class": {"alopecia": 4, "psoriasis": 4, "folliculitis": 4},
                  "originals_per_class": {"alopecia": 2, "psoriasis": 3, "folliculitis": 4}},
        "validation": {"rows": 3, "originals": 3, "augmented": 0,
                       "per_class": {"alopecia": 1, "psoriasis": 1, "folliculitis": 1},
                       "originals_per_class": {"alopecia": 1, "psoriasis": 1, "folliculitis": 1}},
        "test": {"rows": 0, "originals": 0, "augmented": 0,
                 "per_class": {"alopecia": 0, "psoriasis": 0, "folliculitis": 0}},
    }
    base = CardFacts(
        name="scalp", pretty_name="Scalp diseases", version="1.1.0", parent="1.0.0",
        bump_kind="minor", bump_reason="2 image(s) added, 0 removed", description="",
        license="cc-by-nc-4.0", license_name="", license_link="", hub_repo="lab/scalp",
        tags=["medical", "scalp"], classes=list(CLASSES),
        class_descriptions={"alopecia": "patchy hair loss"},
        splits=splits, split_bytes={"train": (12, 5000), "validation": (3, 1200)}, download_size=6000,
        sources=[SourceFacts("atlas.example", 10, "cc-by-nc-4.0", "Example Atlas", True),
                 SourceFacts("local", 2, "", "", True, "file")],
        collection={"sources": 15, "pending": 0, "stored": 12, "exact": 2, "near": 1,
                    "rejected": {"http-404": 1}, "images": 13, "clusters": 12, "multi": 1, "members": 1},
        labeling={"annotators": {"alice": 12, "hint": 12}, "labeled": 12, "excluded": 0, "unlabeled": 0,
                  "unresolved": 0, "agreement": None},
        split_config={"train": 0.7, "validation": 0.15, "test": 0.15, "seed": 1},
        dedup_threshold=10,
        preprocess_steps=[{"op": "resize", "size": 224, "mode": "longest"}],
        preprocess_format="png", balance_method="oversample", class_weights=None,
        changes=Diff(old="1.0.0", new="1.1.0",
                     added=[{"sha256": "a" * 64, "label": "alopecia", "split": "train"}] * 2,
                     relabelled=[{"sha256": "b" * 64, "old": "alopecia", "new": "psoriasis",
                                  "split": "test"}]),
        include_restricted=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_yaml_parses_back_with_every_field() -> None:
    card = DatasetCard(render(facts()))
    data = card.data.to_dict()
    assert data["license"] == "cc-by-nc-4.0" and "license_name" not in data
    assert data["task_categories"] == ["image-classification"]
    assert data["task_ids"] == ["multi-class-image-classification"]
    assert data["size_categories"] == ["n<1K"]
    assert data["pretty_name"] == "Scalp diseases"
    assert data["tags"] == ["medical", "scalp"]
    assert data["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "validation", "path": "data/validation-*"}]}]
    info = data["dataset_info"]
    label = next(f for f in info["features"] if f["name"] == "label")
    names = {"0": "alopecia", "1": "psoriasis", "2": "folliculitis"}
    assert label["dtype"] == {"class_label": {"names": names}}
    assert [f["name"] for f in info["features"]] == [
        "image", "label", "sha256", "source_url", "cluster_id", "group_id", "augmented_from", "width",
        "height", "licence", "attribution", "diagnosis_provenance", "body_site", "fitzpatrick", "monk",
        "collection", "source_metadata"]
    assert next(f for f in info["features"] if f["name"] == "fitzpatrick")["dtype"] == "int8"
    assert info["splits"] == [{"name": "train", "num_bytes": 5000, "num_examples": 12},
                              {"name": "validation", "num_bytes": 1200, "num_examples": 3}]
    assert (info["download_size"], info["dataset_size"]) == (6000, 6200)
    assert "'0': alopecia" in render(facts())  # integer keys quoted, as the Hub expects
    assert "diagnosis" in data["extra_gated_prompt"]
    assert data["annotations_creators"] == ["found", "other"]  # hints and a person


def test_other_licence_gets_a_name_and_link() -> None:
    data = DatasetCard(render(facts(license="other", license_link="https://example.org/terms"))).data
    assert (data.license, data.license_name, data.license_link) == (
        "other", "per-source-licences", "https://example.org/terms")


def test_body_has_every_section() -> None:
    text = DatasetCard(render(facts())).text
    for needle in [
        "## Summary", "**Not for diagnosis.**", "## Classes", "| 0 | alopecia | patchy hair loss | 3 | 5 |",
        "## Sources and licences", "| atlas.example | 10 | cc-by-nc-4.0 | Example Atlas | yes |",
        "| local | 2 | **unknown** |  | unknown |",
        "## Collection and deduplication", "Exact duplicates (same decoded pixels): 2", "http-404: 1",
        "## Labeling", "alice (12 label events)", "## Splits", "seed 1",
        "## Preprocessing", "1. `resize` (size=224, mode=longest)", "## Balancing", "3 synthetic rows",
        "## Intended use", "## Limitations and known biases", "The test split holds 0 originals",
        "Estimated skin tone", "## Changelog", "Changes since v1.0.0:", "- Images added: 2",
        "- Images relabelled: 1",
        "alopecia → psoriasis", "- Images moved between splits: 0",
        'load_dataset("lab/scalp", revision="v1.1.0")', "## Citation",
        "Roy, Mrinmoy and Protity, Anica Tasnim",
        "| alopecia | 4 | 1 | 0 | 5 |",
    ]:
        assert needle in text, needle
    assert text.count(BASELINE_START) == 1 and text.count(BASELINE_END) == 1


def test_classes_table_separates_photos_from_rows() -> None:
    """An oversampled class must not read as having more photos than it has (issue 16)."""
    text = render(facts())
    assert "| id | class | description | photos | rows (with synthetic) |" in text
    assert "| 1 | psoriasis | *not provided* | 4 | 5 |" in text
    assert "| 2 | folliculitis | *not provided* | 5 | 5 |" in text
    assert "Synthetic rows make up 25% of the training split (3 of 12 rows)" in text


def test_first_release_changelog() -> None:
    text = render(facts(parent=None, changes=None, bump_kind="initial", bump_reason="first release"))
    assert "- v1.1.0: first release." in text


def test_replace_baseline_section_keeps_the_rest() -> None:
    text = render(facts())
    once = replace_baseline_section(text, "| metric | value |\n| --- | --- |\n| accuracy | 0.9 |\n")
    assert "| accuracy | 0.9 |" in once and "No baseline has been scored" not in once
    head, tail = text.split(BASELINE_START)
    assert once.startswith(head + BASELINE_START + "\n| metric")
    assert once.endswith(BASELINE_END + tail.split(BASELINE_END)[1])
    twice = replace_baseline_section(once, "accuracy 0.8")
    assert replace_baseline_section(twice, "| metric | value |\n| --- | --- |\n| accuracy | 0.9 |") == once


def test_replace_baseline_section_needs_the_markers() -> None:
    with pytest.raises(ReleaseError, match="README.md has no single baseline section"):
        replace_baseline_section("# card\n", "x")


@pytest.mark.parametrize(("rows", "bucket"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"),
                                               (10_000, "10K<n<100K"), (2_000_000, "1M<n<10M")])
def test_size_category(rows: int, bucket: str) -> None:
    assert size_category(rows) == bucket


def test_a_built_release_card_parses(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 4, "psoriasis": 3, "folliculitis": 3})
    build(ws)
    card = DatasetCard.load(ws / "releases" / "v1.0.0" / "README.md")
    splits = {s["name"]: s["num_examples"] for s in card.data.dataset_info["splits"]}
    manifest = json.loads((ws / "releases" / "v1.0.0" / "manifest.json").read_text())
    assert splits == {s: c["rows"] for s, c in manifest["splits"].items() if c["rows"]}
    assert card.data.license == "other"
    assert "local:img" not in card.text  # file names stay in the parquet, not in the card


DATASHEET_SECTIONS = [
    "## Motivation", "## Composition", "## Collection process", "## Preprocessing, cleaning and labelling",
    "## Uses", "## Distribution", "## Maintenance",
]
HUB_TEMPLATE_LINES = [
    "- Curated by: ", "- Funded by: ", "- Annotators' expertise: ", "- Annotation guidelines: ",
    "- Consent of the people shown: ", "- Ethics review: ", "### Personal and sensitive information",
    "- Contact: ", "- Maintained by: ", "- Purpose: ",
]
ANSWERS = {key: f"the answer to {key.replace('_', ' ')}" for key in QUESTIONS}
DESCRIBED = {c: f"what {c} looks like" for c in CLASSES}


def test_each_datasheet_section_is_present_in_order() -> None:
    text = DatasetCard(render(facts())).text
    where = [text.index(heading) for heading in DATASHEET_SECTIONS]
    assert where == sorted(where)
    for line in HUB_TEMPLATE_LINES:
        assert line in text, line


def test_every_unanswered_question_shows_not_provided() -> None:
    text = render(facts())
    assert text.count(NOT_PROVIDED) == len(QUESTIONS)
    for key in QUESTIONS:
        assert f"{NOT_PROVIDED} (`card.{key}` in curator.toml)" in text, key
    assert text.count("*not provided*") == 2  # the two classes without a description


@pytest.mark.parametrize("key", sorted(QUESTIONS))
def test_an_answer_replaces_its_not_provided_line(key: str) -> None:
    text = render(facts(answers={key: ANSWERS[key]}))
    assert ANSWERS[key] in text
    assert f"`card.{key}`" not in text and text.count(NOT_PROVIDED) == len(QUESTIONS) - 1


def test_a_fully_answered_card_has_no_not_provided_line() -> None:
    text = render(facts(answers=ANSWERS, class_descriptions=DESCRIBED))
    assert "not provided" not in text.lower()
    for answer in [*ANSWERS.values(), *DESCRIBED.values()]:
        assert answer in text, answer


def test_missing_answers_warn_once_each() -> None:
    warnings = missing_answers({}, list(CLASSES), {"alopecia": "patchy hair loss"})
    assert len(warnings) == len(QUESTIONS) + 1
    for key in QUESTIONS:
        assert sum(f"card.{key} " in w for w in warnings) == 1, key
    assert "psoriasis, folliculitis" in warnings[-1] and "alopecia" not in warnings[-1]
    assert missing_answers({**ANSWERS, "contact": "  "}, list(CLASSES), DESCRIBED) == [
        'card: no answer for whom to contact (set card.contact in curator.toml); '
        'the card says "not provided"']
    assert missing_answers(ANSWERS, list(CLASSES), DESCRIBED) == []


def test_unknown_licence_is_never_redistributable_yes() -> None:
    text = render(facts(sources=[SourceFacts("forum.example", 5, "", "", True),
                                 SourceFacts("atlas.example", 3, "", "", False)]))
    assert "| forum.example | 5 | **unknown** |  | unknown |" in text
    assert "| atlas.example | 3 | **unknown** |  | **no** |" in text
    assert "| yes |" not in text


@pytest.mark.parametrize(("kinds", "phrase"), [
    (["url"], "collected from public web pages"),
    (["file"], "read from local image files"),
    (["url", "file"], "collected from public web pages and read from local image files"),
    (["table", "hub"], "listed in source tables and taken from datasets on the Hugging Face Hub"),
])
def test_wording_fits_the_sources(kinds: list[str], phrase: str) -> None:
    sources = [SourceFacts(f"d{i}", 1, "cc-by-4.0", "", True, kind) for i, kind in enumerate(kinds)]
    card = DatasetCard(render(facts(sources=sources)))
    assert f"Photos of the scalp for classifying hair and scalp diseases, {phrase}, " in card.text
    assert f"Images were {phrase}, validated" in card.text
    assert phrase in card.data.extra_gated_prompt
    if "url" not in kinds:
        assert "web" not in card.text.lower() and "web" not in card.data.extra_gated_prompt


def test_load_example_uses_the_configured_repo_or_says_how_to_set_it() -> None:
    assert 'load_dataset("lab/scalp", revision="v1.1.0")' in render(facts())
    text = render(facts(hub_repo=""))
    assert "<namespace>" not in text and "load_dataset(\"lab" not in text
    assert 'set `dataset.hub_repo = "namespace/name"` in curator.toml and `curator publish`' in text


def test_composition_and_skin_tone_tables() -> None:
    composition = {"images": 12, "sizes": {"< 256": 2, "256-511": 10}, "aspects": {"square, 0.95-1.05": 12},
                   "formats": {"JPEG": 11, "PNG": 1}, "median_width": 320, "median_height": 300,
                   "plot": "card/composition.png"}
    bands = {"very light": 0, "light": 1, "intermediate": 2, "tan": 0, "brown": 0, "dark": 0, "unknown": 1}
    skin = {"per_class": {c: bands for c in CLASSES}, "per_split": {"train": bands}}
    card = DatasetCard(render(facts(composition=composition, skin_tone=skin)))
    text = card.text
    assert "| < 256 | 2 |" in text and "| JPEG | 11 |" in text and "Median size 320 x 300 pixels." in text
    assert "![Image sizes, aspects and formats](card/composition.png)" in text
    assert "| alopecia | 0 | 1 | 2 | 0 | 0 | 0 | 1 |" in text
    assert "| train | 0 | 1 | 2 | 0 | 0 | 0 | 1 |" in text
    assert "not a Fitzpatrick type" in text and "uncalibrated" in text
    assert card.data.license == "cc-by-nc-4.0"  # the YAML still parses


def card_table(text: str, first_header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header starts with ``| first_header |``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def counts_table(text: str, first_header: str) -> dict[str, list[int]]:
    """A card table of counts: its first column -> the numbers of the rest."""
    return {row[0]: [int(n) for n in row[1:]] for row in card_table(text, first_header)}


def test_a_realistic_release_card_matches_the_catalog(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 5, "psoriasis": 4, "folliculitis": 3})
    toml = (ws / "curator.toml").read_text()
    for old, new in [('curated_by = ""', 'curated_by = "The scalp lab"'),
                     ('consent = ""', 'consent = "none: public web photos"'),
                     ('# "alopecia" = "what it looks like"', 'alopecia = "patchy hair loss"')]:
        assert old in toml
        toml = toml.replace(old, new)
    (ws / "curator.toml").write_text(toml)
    result = build(ws)
    card = DatasetCard.load(ws / "releases" / "v1.0.0" / "README.md")
    text = card.text
    manifest = json.loads((ws / "releases" / "v1.0.0" / "manifest.json").read_text())
    originals = [r for r in manifest["rows"] if r["augmented_from"] is None]
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        query = "SELECT sha256, width, height, format FROM images"
        catalog = {sha: (w, h, f) for sha, w, h, f in conn.execute(query)}
        kinds = dict(conn.execute("SELECT sha256, kind FROM sources WHERE outcome = 'stored'").fetchall())
    finally:
        conn.close()
    released = [catalog[r["sha256"]] for r in originals]
    # warnings: one per unanswered question, none for the answered ones; classes named once
    card_warnings = [w for w in result.warnings if w.startswith("card: ")]
    assert len(card_warnings) == len(QUESTIONS) - 2 + 1
    assert not any("card.curated_by" in w or "card.consent" in w for w in card_warnings)
    assert "- Curated by: The scalp lab" in text
    assert "- Consent of the people shown: none: public web photos" in text
    assert "| 0 | alopecia | patchy hair loss | 5 | " in text
    assert "| 1 | psoriasis | *not provided* | 4 |" in text
    # composition against the catalog
    formats = {f: sum(1 for _, _, g in released if g == f) for f in {f for _, _, f in released}}
    assert {row[0]: int(row[1]) for row in card_table(text, "format")} == formats
    sizes = card_table(text, "shorter side (pixels)")
    assert sum(int(n) for _, n in sizes) == len(originals) == 12
    assert [label for label, _ in sizes] == ["< 256"]  # the fixture's photos are 80 px
    assert sum(int(n) for _, n in card_table(text, "aspect (width / height)")) == 12
    assert (ws / "releases" / "v1.0.0" / "card" / "composition.png").is_file()
    assert "![Image sizes, aspects and formats](card/composition.png)" in text
    # per-source counts: all local files, worded as such
    assert set(kinds.values()) == {"file"}
    assert card_table(text, "how the images were obtained") == [["read from local image files", "12"]]
    assert "public web pages" not in text and "public web pages" not in card.data.extra_gated_prompt
    assert "| local | 12 | **unknown** |  | unknown |" in text
    # skin tone: every original in one band (or unknown), per class and per split
    tones = {row[0]: [int(n) for n in row[1:]] for row in card_table(text, "class or split")}
    for name in CLASSES:
        assert sum(tones[name]) == sum(1 for r in originals if r["label"] == name), name
    for split, info in manifest["splits"].items():
        if info["originals"]:
            assert sum(tones[split]) == info["originals"], split
    assert "<namespace>" not in text and "set `dataset.hub_repo" in text


def test_web_sources_name_their_opt_out_policy() -> None:
    base = facts().collection
    text = render(facts(collection={**base, "robots": {"ignored": 2, "respected": 13}}))
    assert "(robots.txt, X-Robots-Tag noai): ignored 2, respected 13" in text
    assert "opt-out policy" not in render(facts())


def test_scraped_images_say_plainly_that_no_consent_was_recorded() -> None:
    text = render(facts())
    assert "- What curator recorded: no consent for any image; the 10 collected from public web pages" in text
    local = render(facts(sources=[SourceFacts("local", 2, "", "", True, "file")]))
    assert "What curator recorded" not in local


def test_supplied_fitzpatrick_types_replace_and_are_compared_with_the_estimate(tmp_path: Path) -> None:
    """A table supplies a Fitzpatrick type for most photos: the card counts those types, estimates
    ITA only for the rest, and its cross-table and agreement match the catalog and the estimator."""
    ws = tmp_path / "ws"
    assert run_cli("init", "derm", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(CHEAP_PREPROCESS)
    folder = tmp_path / "in"
    paths = write_images(folder, {"alopecia": 6, "psoriasis": 5, "folliculitis": 4}, first_seed=0)
    with (folder / "derm.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "fst"])
        for i, path in enumerate(paths):  # every fifth photo without a type: estimated instead
            writer.writerow([path.relative_to(folder).as_posix(), path.parent.name,
                             "" if i % 5 == 4 else ["I", "2", "III", "4", "V", "6"][i % 6]])
    mapping = "locator=path,hint=label,fitzpatrick=fst"
    result = run_cli("ingest", str(folder / "derm.csv"), "--columns", mapping, workspace=ws)
    assert result.exit_code == 0, result.output
    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    build(ws)
    text = (ws / "releases" / "v1.0.0" / "README.md").read_text()
    originals = [r for r in json.loads((ws / "releases" / "v1.0.0" / "manifest.json").read_text())["rows"]
                 if r["augmented_from"] is None]
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        supplied = dict(conn.execute("SELECT sha256, fitzpatrick FROM sources WHERE outcome = 'stored'"))
    finally:
        conn.close()
    roman = {"I": 1, "III": 3, "V": 5}
    expected = {sha: (roman.get(v) or int(v)) if v else None for sha, v in supplied.items()}
    assert {r["sha256"]: r["fitzpatrick"] for r in originals} == expected
    typed = [r for r in originals if r["fitzpatrick"] is not None]
    assert len(typed) == 12
    # the supplied types per class, against the catalog
    by_class = counts_table(text, "Fitzpatrick type: class or split")
    for name in CLASSES:
        mine = Counter(r["fitzpatrick"] for r in typed if r["label"] == name)
        assert by_class[name] == [mine[t] for t in range(1, 7)], name
    # the estimate only for the originals without a type
    tones = counts_table(text, "class or split")
    for name in CLASSES:
        untyped = [r for r in originals if r["label"] == name and r["fitzpatrick"] is None]
        assert sum(tones[name]) == len(untyped), name
    # the cross-table and agreement, from the catalog's types and the estimator on the stored originals
    steps = preprocess.normalize_steps([{"op": "resize", "size": 64}])
    bands = [*skintone.BAND_NAMES, skintone.UNKNOWN]
    cross = {t: [0] * len(bands) for t in range(1, 7)}
    same = within = estimated = 0
    for r in typed:
        ita = preprocess.process_with_tone(store.read(ws / "objects", r["sha256"]), steps).ita
        cross[r["fitzpatrick"]][bands.index(skintone.band(ita))] += 1
        if ita is not None:
            estimated += 1
            off = abs(skintone.BAND_NAMES.index(skintone.band(ita)) + 1 - r["fitzpatrick"])
            same, within = same + (off == 0), within + (off <= 1)
    romans = ["I", "II", "III", "IV", "V", "VI"]
    assert counts_table(text, "Fitzpatrick type") == {
        romans[t - 1]: counts for t, counts in cross.items() if sum(counts)}
    assert estimated > 0
    assert (f"the estimate agrees with the supplied type for {same} of the {estimated} originals with an "
            f"estimate") in text
    assert f"is at most one band off for {within} (" in text
    assert "uncalibrated" in text and "the supplied type is the one this card reports" in text
    assert "skin tone is supplied by the sources for 12 originals and only estimated from the pixels" in text


def test_supplied_monk_tones_get_a_cross_table_and_a_rank_correlation() -> None:
    from curator.composition import Tone, skin_tone_facts

    # Monk 2 and 3 on light photos, 9 on dark ones, one without skin; one photo with no type at all
    tones = [Tone("alopecia", "train", 60.0, monk=2), Tone("alopecia", "train", 45.0, monk=3),
             Tone("psoriasis", "train", -40.0, monk=9), Tone("psoriasis", "test", -35.0, monk=9),
             Tone("folliculitis", "test", None, monk=5), Tone("folliculitis", "train", 20.0)]
    text = render(facts(skin_tone=skin_tone_facts(tones, CLASSES, ("train", "validation", "test"))))
    assert counts_table(text, "Monk skin tone: class or split")["psoriasis"] == [0] * 8 + [2, 0]
    assert counts_table(text, "Monk skin tone") == {"2": [1, 0, 0, 0, 0, 0, 0], "3": [0, 1, 0, 0, 0, 0, 0],
                                                    "5": [0, 0, 0, 0, 0, 0, 1], "9": [0, 0, 0, 0, 0, 2, 0]}
    assert "Of the 4 with an estimate: Spearman's rank correlation" in text and "is 0.95 (1:" in text
    assert counts_table(text, "class or split")["folliculitis"] == [0, 0, 0, 1, 0, 0, 0]  # estimated alone
    assert "agrees with the supplied type" not in text  # no band reading for Monk
