"""The settings reference, ``docs/settings.md``, generated from the config schema.

Type and default come from the dataclasses in :mod:`curator.config`; the meaning and an
example from :data:`MEANINGS`, which must name every key (tests/test_conventions.py checks
both that and that the committed file is current). Regenerate with
``python -m curator.settings_doc > docs/settings.md``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from curator import config

# key -> (meaning, example value as written in curator.toml)
MEANINGS: dict[str, tuple[str, str]] = {
    "dataset.name": ("The dataset's name (a-z, 0-9, '-', '_'); set by `curator init`.", '"scalp-diseases"'),
    "dataset.classes": ("The class names, in key order; changing them is a major version.",
                        '["alopecia", "psoriasis", "folliculitis"]'),
    "dataset.license": ("A Hub licence id for the card's metadata.", '"cc-by-nc-4.0"'),
    "dataset.license_name": ('With license = "other": a short name for the terms.', '"per-source-licences"'),
    "dataset.license_link": ('With license = "other": a URL or repo path to the terms.', '"LICENSE.md"'),
    "dataset.pretty_name": ("The card's title.", '"Scalp Diseases"'),
    "dataset.hub_repo": ("The Hub repo `curator publish` pushes to (`namespace/name`).",
                         '"my-lab/scalp-diseases"'),
    "dataset.description": ("A paragraph for the top of the card.", '"Photos of three scalp conditions."'),
    "dataset.tags": ("Tags in the card's metadata.", '["medical", "dermatology"]'),
    "dataset.class_descriptions": ("Older home of `card.classes` (still read; `card.classes` wins).",
                                   '{alopecia = "patchy hair loss"}'),
    "ingest.concurrency": ("Requests in flight, all hosts together.", "32"),
    "ingest.per_host": ("Requests in flight per host.", "8"),
    "ingest.connect_timeout": ("Seconds to wait for a connection.", "10.0"),
    "ingest.read_timeout": ("Seconds to wait for each piece of a reply.", "30.0"),
    "ingest.retries": ("Extra tries on 429, 5xx and timeouts.", "3"),
    "ingest.backoff": ("First retry wait in seconds, doubled each time (Retry-After wins).", "0.5"),
    "ingest.max_retry_after": ("The longest Retry-After honoured, in seconds.", "60.0"),
    "ingest.max_redirects": ("Redirects followed per URL.", "5"),
    "ingest.max_bytes": ("Size cap per image in bytes, enforced while reading.", "25000000"),
    "ingest.user_agent": ("User-Agent header and robots.txt agent (no control characters).",
                          '"lab-bot/1.0 (+https://lab.example)"'),
    "ingest.respect_robots": ("Obey robots.txt (recorded per source).", "true"),
    "ingest.respect_noai": ("Obey X-Robots-Tag: noai / noimageai (recorded per source).", "true"),
    "ingest.min_side": ("Images with a shorter side (pixels) are rejected as too-small.", "64"),
    "ingest.max_pixels": ("Decompression-bomb cap, in pixels.", "64000000"),
    "ingest.columns": ("Column mapping for table and Hub dataset sources, `field = COLUMN` (fields: "
                       "locator, hint, group, licence, attribution, diagnosis, body_site, fitzpatrick "
                       "(skin type I-VI or 1-6), monk (Monk skin tone 1-10)); `--columns` wins.",
                       '{locator = "url", hint = "label", fitzpatrick = "fitzpatrick_scale"}'),
    "ingest.diagnosis_map": ("A source's diagnosis values mapped to histopathology, clinical, consensus, "
                             "atlas-caption or unknown (unmapped values: unknown).",
                             '{histo = "histopathology", follow_up = "clinical"}'),
    "dedup.threshold": ("Hamming distance (of 64 bits) for a near duplicate on the hash alone.", "8"),
    "dedup.candidate_threshold": ("Looser distance for rotated/cropped views, confirmed by keypoints.", "12"),
    "dedup.confirm": ("Confirm candidates by keypoint matching; false: hashes at `threshold` only.", "true"),
    "labels.annotator": ("The default annotator; empty: the OS user.", '"alice"'),
    "labels.policy": ('How annotators combine: "majority" or "adjudicator".', '"majority"'),
    "labels.adjudicator": ('The annotator who wins with policy = "adjudicator".', '"dr-x"'),
    "labels.keys": ("One key per class in `curator label` (default 1..9 in class order).",
                    '{alopecia = "a", psoriasis = "p"}'),
    "labels.blind_fraction": ("Share (0..1) of images, chosen by hash, that never show a model suggestion "
                              "or hint, so agreement on them is measured without anchoring.", "0.1"),
    "split.train": ("Share of the training split (the three sum to 1).", "0.70"),
    "split.validation": ("Share of the validation split.", "0.15"),
    "split.test": ("Share of the test split.", "0.15"),
    "split.seed": ("Seed of the split and of balancing.", "20230601"),
    "groups.pattern": ("A regular expression searched in each source URL or path; its first (...) is the "
                       "patient/lesion group id.", "'/case-(\\d+)/'"),
    "preprocess.steps": ("Ordered steps, each a table with an `op` (resize, denoise, equalize, enhance) "
                         "and its parameters.", '[{op = "resize", size = 224, mode = "longest"}]'),
    "preprocess.format": ('Encoding of release images: "png" (lossless) or "jpeg".', '"png"'),
    "preprocess.jpeg_quality": ('Quality with format = "jpeg" (1-100).', "95"),
    "balance.method": ('"oversample", "class-weights" or "none"; train split only.', '"oversample"'),
    "baseline.image_size": ("Input size of the baseline CNN, pixels (at least 16).", "128"),
    "baseline.epochs": ("Most epochs (early stopping on validation).", "30"),
    "baseline.batch_size": ("Images per training step.", "16"),
    "baseline.learning_rate": ("Adam's learning rate.", "0.001"),
    "baseline.patience": ("Epochs without improvement before stopping.", "5"),
    "baseline.augment": ("Flips and small rotations while training.", "true"),
    "baseline.seed": ("Seed of weights, shuffling and augmentation.", "1337"),
    "baseline.bootstrap": ("Bootstrap resamples for the 95% intervals.", "1000"),
    "baseline.cv_folds": ("Folds of repeated grouped cross-validation (0: off, else at least 2).", "5"),
    "baseline.cv_repeats": ("Repeats of the cross-validation, each with new folds.", "5"),
    "baseline.small_test": ("A test split with fewer images makes the CV estimate the headline.", "50"),
    "baseline.cv_workers": ("Processes for the folds; 0: one per core (at most 4), one on a GPU.", "0"),
    "review.blur_max": ("Sharpness (finest over fine detail, at 256 px) below which it is blurred.", "1.1"),
    "review.dark_max": ("99th-percentile luma (0-255) below which an image is too dark.", "90.0"),
    "review.bright_min": ("1st-percentile luma above which an image is washed out.", "175.0"),
    "review.low_information_max": ("Grey-histogram entropy (bits) below which it is near-uniform.", "2.0"),
    "review.min_side": ("Shorter side (pixels) below which an image is low resolution.", "224"),
    "review.max_aspect": ("Longer over shorter side above which the aspect is odd.", "2.5"),
    "review.greyscale_max": ("Colourfulness per 100 of brightness below which an image is greyscale.", "3.0"),
    "review.face_min": ("Face detector confidence at or above which a face (or eye) is found.", "0.6"),
    "review.offtopic_min": ("Distance to the 5th nearest image (robust z) above: off-topic.", "10.0"),
    "review.label_ranking": ('Order of label issues: "self-confidence" or "normalized-margin".',
                             '"self-confidence"'),
    "card.motivation": ("Datasheet: why the dataset was made and for which task.",
                        '"To benchmark scalp-condition classifiers on curated web photos."'),
    "card.curated_by": ("Datasheet: the people or group who curated it.", '"Scalp Lab, Example University"'),
    "card.funded_by": ('Datasheet: who funded it ("none" answers it).', '"none"'),
    "card.contact": ("Datasheet: where to send questions and corrections.", '"scalp-lab@example.org"'),
    "card.consent": ("Datasheet: whether the people shown consented; for scraped images: \"none\".",
                     '"none: collected from public web pages without asking the people shown"'),
    "card.ethics_review": ('Datasheet: an ethics or IRB review, or "none".', '"none"'),
    "card.personal_information": ("Datasheet: personal and sensitive information the images may reveal.",
                                  '"Scalps and hairlines; faces were excluded on review."'),
    "card.annotator_expertise": ("Datasheet: who the annotators are and their expertise.",
                                 '"two dermatology residents"'),
    "card.annotation_guidelines": ("Datasheet: the instructions annotators followed (text or link).",
                                   '"https://example.org/guidelines"'),
    "card.maintenance": ("Datasheet: who maintains the dataset and how errata and versions are announced.",
                         '"The lab; errata as patch releases, announced in the changelog."'),
    "card.classes": ("One line per class for the card's classes table.", '{alopecia = "patchy hair loss"}'),
    "sources.prefix": ("[[sources]]: a URL prefix or a domain the rule applies to.", '"https://atlas.example/"'),
    "sources.license": ("[[sources]]: the licence of those images.", '"cc-by-4.0"'),
    "sources.attribution": ("[[sources]]: who to credit.", '"Example Atlas"'),
    "sources.redistributable": ("[[sources]]: false keeps them out of releases unless --include-restricted.",
                                "true"),
    "sources.diagnosis": ("[[sources]]: how their diagnoses were confirmed (histopathology, clinical, "
                          "consensus, atlas-caption, unknown, or a value [ingest.diagnosis_map] maps); a "
                          "table's column wins.", '"atlas-caption"'),
    "sources.body_site": ("[[sources]]: the body site of their photos; a table's column wins.", '"scalp"'),
}


def schema() -> list[tuple[str, str, Any]]:
    """(key, type, default) for every key of curator.toml, in file order."""
    rows: list[tuple[str, str, Any]] = []
    hints = typing.get_type_hints(config.Config)
    for section in dataclasses.fields(config.Config):
        cls = hints[section.name]
        if typing.get_origin(cls) is tuple:  # [[sources]]: a list of tables
            (cls,) = [a for a in typing.get_args(cls) if a is not Ellipsis]
        fields_hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default: Any = f.default
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            rows.append((f"{section.name}.{f.name}", _type_name(fields_hints[f.name]), default))
    return rows


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return "list"
    if origin is dict:
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(hint, "any")


def _default(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if isinstance(value, tuple) and value and isinstance(value[0], dict):
        return "see below"
    return "`" + json.dumps(config._plain(value)).replace("|", "\\|") + "`"


def reference() -> str:
    lines = [
        "# curator.toml settings",
        "",
        "Generated from the config schema by `python -m curator.settings_doc`; do not edit by hand.",
        "Every key is checked when the file is loaded: an unknown key or a bad value is one error line",
        "naming the key, exit 4. Numbers must be finite.",
        "",
        "| key | type | default | meaning | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, kind, default in schema():
        meaning, example = MEANINGS[key]
        lines.append(f"| `{key}` | {kind} | {_default(default)} | {meaning} | `{example}` |")
    steps = json.dumps(config._plain(config.PreprocessConfig().steps), indent=2)
    lines += ["", "Default `preprocess.steps` (as JSON):", "", "```json", steps, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
