"""The workspace's settings: ``curator.toml`` as one frozen :class:`Config`.

Loaded once at the edge (the CLI) and passed down. Every table and key is
checked: an unknown key, a missing required key or a value of the wrong type is
a :class:`~curator.errors.ConfigError` naming the key (``ingest.max_bytes``).
Each section is a small frozen dataclass; its defaults are the documented
defaults. :func:`as_dict` gives the effective config for release manifests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator import match, provenance
from curator.errors import ConfigError

CONFIG_FILE = "curator.toml"
CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# The Hub's repo id rules: namespace/name, letters, digits, '-', '_', '.', at most 96 each.
HUB_REPO = re.compile(r"^[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    classes: tuple[str, ...]
    license: str = "other"
    license_name: str = ""  # with license = "other": a short name for the card (default: per-source-licences)
    license_link: str = ""  # with license = "other": a URL or repo path to the terms (default: README.md)
    pretty_name: str = ""
    hub_repo: str = ""  # "namespace/name" on the Hub; empty until set
    description: str = ""
    tags: tuple[str, ...] = ("medical", "dermatology", "scalp")
    # class name -> one-line description for the card
    class_descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestConfig:
    concurrency: int = 32  # requests in flight, all hosts together
    per_host: int = 8  # requests in flight per host
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3  # extra tries on 429/5xx/timeouts
    backoff: float = 0.5  # first retry wait in seconds, doubled each time (Retry-After wins)
    max_retry_after: float = 60.0  # never wait longer than this for one Retry-After
    max_redirects: int = 5
    max_bytes: int = 25_000_000
    user_agent: str = "curator/0.1 (dataset curation; +https://github.com/curator)"
    respect_robots: bool = True
    respect_noai: bool = True
    min_side: int = 64
    max_pixels: int = 64_000_000  # decompression-bomb cap
    # field -> column of a table or Hub dataset source (curator.ingest.tables); --columns wins
    columns: dict[str, str] = field(default_factory=dict)
    # a source's diagnosis value -> one of provenance.DIAGNOSIS_PROVENANCE
    diagnosis_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DedupConfig:
    threshold: int = 8  # Hamming distance (of 64 bits) for a near duplicate on the hash alone
    candidate_threshold: int = 10  # looser: turned/cropped views, confirmed by keypoints (curator.match)
    confirm: bool = True  # keypoint confirmation of candidates; off: hashes at `threshold` only


@dataclass(frozen=True)
class LabelsConfig:
    annotator: str = ""  # default annotator; empty: the OS user
    policy: str = "majority"  # 'majority' or 'adjudicator'
    adjudicator: str = ""
    keys: dict[str, str] = field(default_factory=dict)  # class -> key; default 1..9 in class order
    # Share of images (chosen by hash: the same for every run and annotator) that never show a
    # model suggestion or hint, so agreement on them is measured without anchoring.
    blind_fraction: float = 0.0


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.70
    validation: float = 0.15
    test: float = 0.15
    seed: int = 20230601


@dataclass(frozen=True)
class GroupsConfig:
    # A regular expression searched in each source's URL (or a local file's path): its first
    # capture group, else the whole match, is the source's patient/lesion group id.
    pattern: str = ""


@dataclass(frozen=True)
class PreprocessConfig:
    # Ordered steps, each a table with an 'op' and its parameters; checked by curator.preprocess.
    steps: tuple[dict[str, Any], ...] = (
        {"op": "resize", "size": 224, "mode": "longest"},
        # bilateral, not non-local means: measured best on our photos at a fraction of the cost
        # (curator/preprocess.py docstring; benchmarks/preprocess_speed.py --tune)
        {"op": "denoise", "method": "bilateral", "diameter": 7, "sigma_color": 25.0, "sigma_space": 5.0},
        {"op": "equalize", "method": "clahe", "clip_limit": 2.0, "tile": 8},
        {"op": "enhance", "method": "unsharp", "amount": 0.5, "radius": 1.0},
    )
    format: str = "png"  # encoding of release images: png (lossless) or jpeg
    jpeg_quality: int = 95


@dataclass(frozen=True)
class BalanceConfig:
    method: str = "oversample"  # 'none', 'oversample' or 'class-weights'


@dataclass(frozen=True)
class SourceRule:
    """Licence terms for every source whose URL starts with ``prefix`` (or whose host is ``prefix``)."""

    prefix: str
    license: str = ""
    attribution: str = ""
    redistributable: bool = True
    diagnosis: str = ""  # how its diagnoses were confirmed, e.g. "atlas-caption" (a table column wins)
    body_site: str = ""  # e.g. "scalp" (a table column wins)


@dataclass(frozen=True)
class BaselineConfig:
    image_size: int = 128
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    patience: int = 5
    augment: bool = True
    seed: int = 1337
    bootstrap: int = 1000
    cv_folds: int = 5  # repeated grouped K-fold: K (0: no cross-validation)
    cv_repeats: int = 5  # R: each repeat draws new folds
    small_test: int = 50  # a test split with fewer images makes the CV estimate the headline
    cv_workers: int = 0  # processes for the folds; 0: one per CPU core (at most 4), one on a GPU


@dataclass(frozen=True)
class ReviewConfig:
    """Thresholds of `curator review`'s image checks (curator.review; defaults measured by
    benchmarks/review_quality.py, see README "Data review")."""

    blur_max: float = 1.1  # sharpness (finest over fine detail, at 256 px) below: blur
    dark_max: float = 90.0  # 99th-percentile luma (0-255) below: too dark
    bright_min: float = 175.0  # 1st-percentile luma above: too bright / washed out
    low_information_max: float = 2.0  # entropy of the grey histogram (bits) below: near-uniform
    min_side: int = 224  # shorter side in pixels below: low resolution
    max_aspect: float = 2.5  # longer / shorter side above: odd aspect ratio
    greyscale_max: float = 3.0  # colourfulness (Hasler-Suesstrunk, per 100 of brightness) below: greyscale
    face_min: float = 0.6  # face detector confidence at or above: face (or eye, if partial)
    offtopic_min: float = 10.0  # distance to the 5th nearest image (robust z units) above: off-topic
    label_ranking: str = "self-confidence"  # or "normalized-margin": the order of label issues


@dataclass(frozen=True)
class CardConfig:
    """A person's answers to the datasheet questions the tool cannot answer from its records
    (dataset_card.datasheet.QUESTIONS); an empty answer shows as "not provided" on the card."""

    motivation: str = ""  # why the dataset was made, and for which task
    curated_by: str = ""  # people or group who curated it
    funded_by: str = ""  # who paid for it; "none" is an answer
    contact: str = ""  # where to send questions and corrections
    consent: str = ""  # did the people shown consent? for scraped images: "none"
    ethics_review: str = ""  # an ethics/IRB review, or "none"
    personal_information: str = ""  # personal and sensitive information the images may reveal
    annotator_expertise: str = ""  # who the annotators are and their training
    annotation_guidelines: str = ""  # the instructions annotators followed
    maintenance: str = ""  # who maintains it, how errata and new versions are announced
    classes: dict[str, str] = field(default_factory=dict)  # class name -> one-line description


@dataclass(frozen=True)
class EngineConfig:
    """Where ingest's, review's and release's per-image work runs (curator.engine)."""

    kind: str = "local"  # "local": this machine's threads and processes; "ray": Ray tasks
    address: str = ""  # with kind = "ray": "auto", "ray://head:10001", ...; empty: start Ray for the run
    batch_size: int = 64  # images per Ray task


@dataclass(frozen=True)
class Config:
    dataset: DatasetConfig
    ingest: IngestConfig = field(default_factory=IngestConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    card: CardConfig = field(default_factory=CardConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sources: tuple[SourceRule, ...] = ()


def load(path: Path) -> Config:
    """Read and check ``curator.toml``."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such file", path=str(path)) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})", path=str(path)) from err
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Config:
    if "dataset" not in raw:
        raise ConfigError("curator.toml: missing table [dataset]", key="dataset")
    config = _build(Config, raw, "")
    _check(config)
    return config


def as_dict(config: Config) -> dict[str, Any]:
    """The effective config, without ``[engine]``: where the work ran changes no output."""
    plain = _plain(dataclasses.asdict(config))
    del plain["engine"]
    return plain


def config_hash(value: Any) -> str:
    """A stable short hash of any JSON-able value (a config section, a step list)."""
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"curator.toml: {where} must be a table", key=where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            name = f"{where}.{key}" if where else key
            raise ConfigError(f"curator.toml: unknown key '{name}'", key=name)
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise missing_key(key)
            continue
        values[name] = _coerce(hints[name], table[name], key)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"curator.toml: '{key}' must be a list", key=key)
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"curator.toml: '{key}' must be a table", key=key)
        _, vtype = typing.get_args(hint)
        return {k: _coerce(vtype, v, f"{key}.{k}") for k, v in value.items()}
    if hint is Any or origin is types.UnionType:
        _check_finite(value, key)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"curator.toml: '{key}' must be a finite number, not {value!r}", key=key)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"curator.toml: '{key}' must be an integer, not {value!r}", key=key)
    if not isinstance(value, hint):
        raise ConfigError(f"curator.toml: '{key}' must be {hint.__name__}, not {value!r}", key=key)
    return value


def _check_finite(value: Any, key: str) -> None:
    """NaN and infinity defeat every comparison a check makes (and are not JSON): refuse them anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"curator.toml: '{key}' must be a finite number, not {value!r}", key=key)
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}[{i}]")


def has_control_characters(text: str) -> bool:
    """C0 controls (CR, LF, NUL, ...), DEL and C1: never valid in an HTTP header."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def bad_value(key: str, why: str) -> ConfigError:
    """The error for a bad value, naming its key: ``curator.toml: 'split' ratios ...``."""
    return ConfigError(f"curator.toml: '{key}' {why}", key=key)


def missing_key(key: str) -> ConfigError:
    return ConfigError(f"curator.toml: missing key '{key}'", key=key)


def _check(config: Config) -> None:
    """Value checks beyond types; each names its key."""
    classes = config.dataset.classes
    if len(classes) < 2:
        raise bad_value("dataset.classes", "needs at least two classes")
    for name in classes:
        if not CLASS_NAME.match(name):
            raise bad_value("dataset.classes", f"has an invalid class name {name!r} (use a-z, 0-9, '-', '_')")
    if len(set(classes)) != len(classes):
        raise bad_value("dataset.classes", "lists a class twice")
    for name in config.dataset.class_descriptions:
        if name not in classes:
            raise bad_value(f"dataset.class_descriptions.{name}", "is not one of dataset.classes")
    for name in config.card.classes:
        if name not in classes:
            raise bad_value(f"card.classes.{name}", "is not one of dataset.classes")
    ing = config.ingest
    _check_provenance(ing)
    for key in ("concurrency", "per_host", "max_bytes", "min_side", "max_pixels"):
        if getattr(ing, key) < 1:
            raise bad_value(f"ingest.{key}", "must be at least 1")
    for key in ("connect_timeout", "read_timeout", "backoff", "max_retry_after"):
        if getattr(ing, key) <= 0:
            raise bad_value(f"ingest.{key}", "must be positive")
    for key in ("retries", "max_redirects"):  # 0: no retries / follow no redirect
        if getattr(ing, key) < 0:
            raise bad_value(f"ingest.{key}", "must be 0 or more")
    problem = match.threshold_problem(config.dedup.threshold, config.dedup.candidate_threshold)
    if problem is not None:
        raise bad_value(*problem)
    if has_control_characters(ing.user_agent):  # it goes into every request's headers
        raise bad_value("ingest.user_agent", "must not contain control characters (CR, LF, ...)")
    repo = config.dataset.hub_repo
    if repo and not _valid_repo(repo):
        raise bad_value("dataset.hub_repo", f"must be 'namespace/name' on the Hub, not {repo!r}")
    if config.labels.policy not in ("majority", "adjudicator"):
        raise bad_value("labels.policy", "must be 'majority' or 'adjudicator'")
    if config.labels.policy == "adjudicator" and not config.labels.adjudicator:
        raise bad_value("labels.adjudicator", "must name an annotator when labels.policy = 'adjudicator'")
    for name, key in config.labels.keys.items():
        if name not in classes:
            raise bad_value(f"labels.keys.{name}", "is not one of dataset.classes")
        if len(key) != 1 or key in "suxo?q":
            raise bad_value(f"labels.keys.{name}", "must be one character other than s, u, x, o, ?, q")
        others = [other for other, k in config.labels.keys.items() if k == key and other != name]
        if others:
            raise bad_value(f"labels.keys.{name}", f"uses the same key as labels.keys.{others[0]}")
    if not 0.0 <= config.labels.blind_fraction <= 1.0:
        raise bad_value("labels.blind_fraction", "must be between 0 and 1")
    if "hint" in (config.labels.annotator, config.labels.adjudicator):
        raise bad_value("labels.annotator", "must not be 'hint' (reserved for accepted ingest hints)")
    ratios = (config.split.train, config.split.validation, config.split.test)
    if any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise bad_value("split", "ratios train/validation/test must be positive and sum to 1")
    if config.groups.pattern:
        try:
            re.compile(config.groups.pattern)
        except re.error as err:
            raise bad_value("groups.pattern", f"is not a valid regular expression ({err})") from err
    if config.balance.method not in ("none", "oversample", "class-weights"):
        raise bad_value("balance.method", "must be 'none', 'oversample' or 'class-weights'")
    if config.preprocess.format not in ("png", "jpeg"):
        raise bad_value("preprocess.format", "must be 'png' or 'jpeg'")
    if not 1 <= config.preprocess.jpeg_quality <= 100:
        raise bad_value("preprocess.jpeg_quality", "must be from 1 to 100")
    from curator import preprocess  # here, not at the top: preprocess imports this module

    preprocess.check_steps(config.preprocess.steps)
    b = config.baseline
    for key in ("image_size", "epochs", "batch_size", "patience", "bootstrap", "cv_repeats"):
        if getattr(b, key) < 1:
            raise bad_value(f"baseline.{key}", "must be at least 1")
    if b.cv_folds == 1 or b.cv_folds < 0:
        raise bad_value("baseline.cv_folds", "must be 0 (off) or at least 2")
    for key in ("small_test", "cv_workers"):
        if getattr(b, key) < 0:
            raise bad_value(f"baseline.{key}", "must be 0 or more")
    if b.learning_rate <= 0:
        raise bad_value("baseline.learning_rate", "must be positive")
    if b.image_size < 16:  # the baseline CNN halves the input four times
        raise bad_value("baseline.image_size", "must be at least 16")
    _check_review(config.review)
    check_engine(config.engine)


def _check_provenance(ing: IngestConfig) -> None:
    for name in ing.columns:
        if name not in provenance.FIELDS:
            raise bad_value(f"ingest.columns.{name}", f"is not a field ({', '.join(provenance.FIELDS)})")
    for value, word in ing.diagnosis_map.items():
        if word not in provenance.DIAGNOSIS_PROVENANCE:
            raise bad_value(f"ingest.diagnosis_map.{value}",
                            f"must be one of {', '.join(provenance.DIAGNOSIS_PROVENANCE)}")


def _check_review(r: ReviewConfig) -> None:
    for key in ("blur_max", "dark_max", "bright_min", "low_information_max", "greyscale_max",
                "face_min", "offtopic_min"):
        if getattr(r, key) <= 0:
            raise bad_value(f"review.{key}", "must be positive")
    if r.min_side < 1:
        raise bad_value("review.min_side", "must be at least 1")
    if r.max_aspect < 1:
        raise bad_value("review.max_aspect", "must be at least 1")
    if r.label_ranking not in ("self-confidence", "normalized-margin"):
        raise bad_value("review.label_ranking", "must be 'self-confidence' or 'normalized-margin'")


ENGINES = ("local", "ray")


def check_engine(e: EngineConfig) -> None:
    if e.kind not in ENGINES:
        raise bad_value("engine.kind", "must be 'local' or 'ray'")
    if e.batch_size < 1:
        raise bad_value("engine.batch_size", "must be at least 1")
    if has_control_characters(e.address):
        raise bad_value("engine.address", "must not contain control characters")


def _valid_repo(repo: str) -> bool:
    return bool(HUB_REPO.match(repo)) and ".." not in repo and "--" not in repo


def default_toml(name: str, classes: list[str]) -> str:
    """The text ``curator init`` writes: every section with its defaults, commented."""
    class_list = ", ".join(json.dumps(c) for c in classes)
    class_lines = "\n".join(f"# {json.dumps(c)} = \"what it looks like\"" for c in classes)
    return f"""# curator workspace settings. Unknown keys are an error; docs/settings.md describes every key.

# what the dataset is, for the card and the Hub
[dataset]
name = {json.dumps(name)}
classes = [{class_list}]
license = "other"            # a Hub licence id, e.g. "cc-by-nc-4.0"
pretty_name = {json.dumps(name.replace("-", " ").title())}
hub_repo = ""                # "namespace/name" for `curator publish`

# how sources are fetched and checked
[ingest]
concurrency = 32             # requests in flight, all hosts
per_host = 8                 # requests in flight per host
connect_timeout = 10.0
read_timeout = 30.0
retries = 3                  # on 429, 5xx and timeouts, with backoff (Retry-After honoured)
max_redirects = 5
max_bytes = 25000000         # size cap, enforced while streaming
respect_robots = true        # robots.txt, checked before each image is fetched
respect_noai = true          # X-Robots-Tag: noai / noimageai
min_side = 64                # pixels; smaller images are rejected
# columns = {{ locator = "url", hint = "label", group = "case_id", licence = "license" }}  # tables, hf://
# diagnosis_map = {{ histo = "histopathology", follow_up = "clinical" }}  # to the provenance vocabulary

# near-duplicate matching
[dedup]
threshold = 8                # Hamming distance (of 64) for near duplicates on the hash alone
candidate_threshold = 10     # looser matches (turned, cropped views) confirmed by keypoints
confirm = true               # keypoint confirmation; false: hashes at `threshold` only

# who labels, and how annotators combine
[labels]
annotator = ""               # default: the OS user
policy = "majority"          # or "adjudicator" (then set adjudicator = "name")
# keys = {{ alopecia = "a" }}  # one key per class in `curator label` (default 1..9 in class order)
blind_fraction = 0.0         # share of images never shown a suggestion or hint (agreement unanchored)

# train/validation/test shares (sum to 1) and the seed; splits are sticky
[split]
train = 0.70
validation = 0.15
test = 0.15
seed = 20230601

# patient/lesion groups: kept whole in one split
[groups]
pattern = ""                 # regex over each source URL/path; its first (...) is the patient/lesion id

# [preprocess]               # applied in order when a release is built; originals never change
# steps = [
#   {{ op = "resize", size = 224, mode = "longest" }},
#   {{ op = "denoise", method = "bilateral", diameter = 7, sigma_color = 25.0, sigma_space = 5.0 }},
#   {{ op = "equalize", method = "clahe", clip_limit = 2.0, tile = 8 }},
#   {{ op = "enhance", method = "unsharp", amount = 0.5, radius = 1.0 }},
# ]
# format = "png"             # or "jpeg" (then jpeg_quality = 1..100)

# training split only
[balance]
method = "oversample"        # "none", "oversample" or "class-weights"

# [baseline]                 # the CNN that `curator baseline` trains and scores (these are the defaults)
# image_size = 128           # pixels
# epochs = 30                # at most; early stopping on validation
# batch_size = 16
# learning_rate = 0.001
# patience = 5               # epochs without improvement before stopping
# seed = 1337

# [review]                   # thresholds of `curator review`'s checks (these are the defaults)
# blur_max = 1.1             # sharpness below: blurred
# min_side = 224             # shorter side in pixels below: low resolution
# face_min = 0.6             # face detector confidence at or above: face

# [engine]                   # where ingest, review and release run their per-image work
# kind = "local"             # or "ray" (pip install 'curator[ray]'); --engine wins
# address = ""               # with "ray": "auto" or "ray://head:10001"; empty: a local Ray for the run
# batch_size = 64            # images per Ray task

# Answers for the dataset card's datasheet; an empty answer shows as "not provided" and
# `curator release` warns about it. docs/settings.md says what each question asks.
[card]
motivation = ""              # why the dataset exists, for which task
curated_by = ""              # people or group
funded_by = ""               # "none" is an answer
contact = ""                 # an e-mail address or an issue tracker
# for scraped images say it plainly: "none: collected from public web pages without asking the people shown"
consent = ""                 # whether the people shown consented
ethics_review = ""           # an ethics/IRB review, or "none"
personal_information = ""    # what the photos may reveal (faces, tattoos, identifiable scalp features)
annotator_expertise = ""     # e.g. "two dermatology residents"
annotation_guidelines = ""   # the instructions annotators followed, or a link
maintenance = ""             # who maintains it; how errata and new versions are announced

[card.classes]               # one line per class for the card; a class without one shows "not provided"
{class_lines}

# Licence per source: one [[sources]] table per domain or URL prefix.
# [[sources]]
# prefix = "https://www.example-atlas.org/"
# license = "cc-by-nc-4.0"
# attribution = "Example Atlas, https://www.example-atlas.org"
# redistributable = true
# diagnosis = "atlas-caption"  # how its diagnoses were confirmed (histopathology, clinical, ...)
# body_site = "scalp"
"""
