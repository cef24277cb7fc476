"""The dataset card: YAML the Hub parses back as written, a complete body, the baseline section."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

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
from tests.conftest import CLASSES
from tests.test_release import build, make_workspace


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
                 SourceFacts("local", 2, "", "", True)],
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
        "height", "licence", "attribution", "diagnosis_provenance", "body_site", "collection",
        "source_metadata"]
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
        "| local | 2 | **unknown** |  | yes |",
        "## Collection and deduplication", "Exact duplicates (same decoded pixels): 2", "http-404: 1",
        "## Labeling", "alice (12 label events)", "## Splits", "seed 1",
        "## Preprocessing", "1. `resize` (size=224, mode=longest)", "## Balancing", "3 synthetic rows",
        "## Intended use", "## Limitations and known biases", "The test split holds 0 originals",
        "Skin tone", "## Changelog", "Changes since v1.0.0:", "- Images added: 2", "- Images relabelled: 1",
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
    assert "| 1 | psoriasis |  | 4 | 5 |" in text and "| 2 | folliculitis |  | 5 | 5 |" in text
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
