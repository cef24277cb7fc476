"""Labels: an append-only history of label events, and the current labels derived from it.

Events
    Every decision is one row in ``label_events``: image, annotator, label (a class,
    ``EXCLUDED``, or NULL for "no label"), the annotator's previous label for that
    image, the action (``label``, ``exclude``, ``undo``, ``import``, ``hint``) and the
    time, and whether a model suggestion was on screen (``suggested``: 1, 0, or NULL where
    not known: older events, imports). Rows are never updated or deleted. An annotator's
    current label for an image is the label of their latest event for it; an undo is an
    event that restores the previous value (NULL when there was none).

Clusters
    The prompt shows one image per near-duplicate cluster, its representative; labeling
    it labels the cluster. An image without a label of its own inherits its cluster's
    label: the representative's, else the label its labeled members agree on.

Conflict policy (``[labels] policy`` in curator.toml)
    ``majority``     the label given by most annotators wins. A tie is *unresolved*:
                     the image has no current label (it is left out of releases),
                     ``curator status`` counts it as unresolved and
                     ``curator label --conflicts`` brings it back for review.
    ``adjudicator``  the annotator named by ``[labels] adjudicator`` wins wherever
                     they labeled the image; elsewhere the majority rule applies.
    Labels by the annotator ``hint`` (accepted ingest hints) count only where no
    person has labeled the image, so any human answer overrides a hint. ``hint``
    labels are also left out of agreement figures.

Agreement and counts (:func:`summary`) are per cluster, the unit that is labeled
and released.
"""

from __future__ import annotations

import csv
import getpass
import io
import random
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from curator import agreement, catalog, suggest
from curator.config import Config
from curator.errors import InputError
from curator.fsutil import write_atomic

EXCLUDED = "__excluded__"
HINT_ANNOTATOR = "hint"
ORDERS = ("ingest", "random", "hint", "uncertain")


def default_annotator(cfg: Config) -> str:
    """``[labels] annotator`` from curator.toml, else the OS user."""
    if cfg.labels.annotator:
        return cfg.labels.annotator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"


def check_annotator(name: str) -> str:
    name = name.strip()
    if not name:
        raise InputError("annotator: the name is empty", key="annotator", value=name, reason="empty")
    if name == HINT_ANNOTATOR:
        raise InputError("annotator: 'hint' is reserved for accepted ingest hints", key="annotator",
                         value=name, reason="reserved")
    return name


def valid_labels(cfg: Config) -> tuple[str, ...]:
    return (*cfg.dataset.classes, EXCLUDED)


# ---------------------------------------------------------------------------------------------
# Reading the catalog


@dataclass
class State:
    """What labeling needs from the catalog, read once."""

    created: dict[str, str] = field(default_factory=dict)  # sha256 -> created_at
    cluster_of: dict[str, int] = field(default_factory=dict)
    members: dict[int, list[str]] = field(default_factory=dict)  # in ingest order
    representative: dict[int, str] = field(default_factory=dict)
    votes: dict[str, dict[str, str]] = field(default_factory=dict)  # sha -> annotator -> label
    last_vote_id: dict[tuple[str, str], int] = field(default_factory=dict)
    hints: dict[str, list[str]] = field(default_factory=dict)  # sha -> distinct raw hints
    # (sha, annotator) whose latest label was given with a model suggestion on screen
    suggested: set[tuple[str, str]] = field(default_factory=set)


def load_state(conn: sqlite3.Connection) -> State:
    state = State()
    for row in conn.execute("SELECT sha256, cluster_id, created_at FROM images ORDER BY created_at, sha256"):
        state.created[row[0]] = row[2]
        state.cluster_of[row[0]] = row[1]
        state.members.setdefault(row[1], []).append(row[0])
    for cid, rep in conn.execute("SELECT id, representative FROM clusters"):
        if cid in state.members:
            state.representative[cid] = rep if rep in state.cluster_of else state.members[cid][0]
    rows = conn.execute(
        "SELECT e.id, e.sha256, e.annotator, e.label, e.suggested FROM label_events e JOIN "
        "(SELECT MAX(id) AS id FROM label_events GROUP BY sha256, annotator) last ON e.id = last.id"
    )
    for event_id, sha, annotator, label, suggested in rows:
        state.last_vote_id[(sha, annotator)] = event_id
        if suggested:
            state.suggested.add((sha, annotator))
        if label is not None:
            state.votes.setdefault(sha, {})[annotator] = label
    for sha, hint in conn.execute(
        "SELECT sha256, hint FROM sources WHERE sha256 IS NOT NULL AND hint IS NOT NULL "
        "AND trim(hint) != '' ORDER BY id"
    ):
        seen = state.hints.setdefault(sha, [])
        if hint.strip() not in seen:
            seen.append(hint.strip())
    return state


def hint_class(hints: Iterable[str], cfg: Config) -> str | None:
    """The class named by an image's hints, when they name exactly one class."""
    named = {h.strip().lower() for h in hints} & set(cfg.dataset.classes)
    return named.pop() if len(named) == 1 else None


def resolve(votes: dict[str, str], cfg: Config) -> str | None:
    """One image's label from its annotators' current labels, by the conflict policy."""
    people = {a: v for a, v in votes.items() if a != HINT_ANNOTATOR}
    if not people:
        return votes.get(HINT_ANNOTATOR)
    if cfg.labels.policy == "adjudicator" and cfg.labels.adjudicator in people:
        return people[cfg.labels.adjudicator]
    ranked = Counter(people.values()).most_common(2)
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return None  # a tie: unresolved, needs review
    return ranked[0][0]


def _own_labels(state: State, cfg: Config) -> dict[str, str | None]:
    """sha -> resolved label for images with any vote (None: an unresolved tie)."""
    return {sha: resolve(votes, cfg) for sha, votes in state.votes.items()}


def _cluster_label(state: State, own: dict[str, str | None], cid: int) -> str | None:
    rep = state.representative[cid]
    if own.get(rep) is not None:
        return own[rep]
    labels = {own[m] for m in state.members[cid] if own.get(m) is not None}
    return labels.pop() if len(labels) == 1 else None


def current_labels(conn: sqlite3.Connection, cfg: Config) -> dict[str, str]:
    """image sha256 -> class or EXCLUDED, resolved by the conflict policy; clusters inherit.

    Images with no label (or only an unresolved tie) are absent.
    """
    state = load_state(conn)
    return _effective(state, cfg)


def _effective(state: State, cfg: Config) -> dict[str, str]:
    own = _own_labels(state, cfg)
    result: dict[str, str] = {}
    for cid, members in state.members.items():
        inherited = _cluster_label(state, own, cid)
        for sha in members:
            label = own[sha] if sha in own else inherited
            if label is not None:
                result[sha] = label
    return result


def annotator_cluster_labels(state: State, annotator: str) -> dict[int, str]:
    """cluster id -> this annotator's label for the cluster (on its representative, else
    their latest label on any member)."""
    result: dict[int, str] = {}
    for cid, members in state.members.items():
        rep = state.representative[cid]
        if annotator in state.votes.get(rep, {}):
            result[cid] = state.votes[rep][annotator]
            continue
        voted = [
            (state.last_vote_id[(m, annotator)], state.votes[m][annotator])
            for m in members
            if annotator in state.votes.get(m, {})
        ]
        if voted:
            result[cid] = max(voted)[1]
    return result


# ---------------------------------------------------------------------------------------------
# Writing events


def annotator_label(conn: sqlite3.Connection, sha256: str, annotator: str) -> str | None:
    row = conn.execute(
        "SELECT label FROM label_events WHERE sha256 = ? AND annotator = ? ORDER BY id DESC LIMIT 1",
        (sha256, annotator),
    ).fetchone()
    return None if row is None else row[0]


def _insert(conn: sqlite3.Connection, sha256: str, annotator: str, label: str | None,
            previous: str | None, action: str, suggested: bool | None = None) -> None:
    conn.execute(
        "INSERT INTO label_events (sha256, annotator, label, previous, action, at, suggested)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (sha256, annotator, label, previous, action, catalog.utcnow(),
         None if suggested is None else int(suggested)),
    )


def record(
    conn: sqlite3.Connection, sha256: str, annotator: str, label: str | None, action: str,
    suggested: bool | None = None,
) -> str | None:
    """Append one event in its own transaction (committed on return); return the previous label.
    ``suggested``: whether a model suggestion was on screen (None: not known)."""
    with catalog.atomic(conn):
        previous = annotator_label(conn, sha256, annotator)
        _insert(conn, sha256, annotator, label, previous, action, suggested)
    return previous


def accept_hints(conn: sqlite3.Connection, cfg: Config) -> int:
    """Turn ingest hints that name a class into labels by annotator 'hint'; return events added.

    An image whose sources hint at two different classes is left alone; hints that
    are not a class (after trimming and lower-casing) are ignored. Running it twice
    adds nothing the second time.
    """
    state = load_state(conn)
    added = 0
    with catalog.atomic(conn):
        for sha, hints in state.hints.items():
            label = hint_class(hints, cfg)
            current = state.votes.get(sha, {}).get(HINT_ANNOTATOR)
            if label is None or label == current:
                continue
            _insert(conn, sha, HINT_ANNOTATOR, label, current, "hint", suggested=False)
            added += 1
    return added


# ---------------------------------------------------------------------------------------------
# Import and export


@dataclass(frozen=True)
class ImportResult:
    path: str
    rows: int
    events: int  # rows that changed an annotator's label (the rest already matched)
    groups: int = 0  # images given a patient/lesion group id


@dataclass(frozen=True)
class _Row:
    number: int
    sha256: str
    label: str | None  # None: the file has no label column
    annotator: str
    group: str | None = None  # None: the file has no group_id column


def import_csv(conn: sqlite3.Connection, cfg: Config, path: str | Path, *,
               annotator: str | None = None) -> ImportResult:
    """Import labels from a CSV file in ONE transaction, or change nothing.

    Header row, then columns ``sha256`` or ``url``/``source_url``, ``label`` (a class
    or ``__excluded__``) and/or ``group_id`` (the image's patient or lesion group: it
    is set on every source of the image, see curator.groups), optional ``annotator``
    (default: ``annotator`` argument, else the default annotator). Rows are numbered
    as a spreadsheet shows them (the header is row 1). The first bad row raises
    InputError: ``labels.csv row 7: unknown class 'eczema'``; an empty group id, or
    one image given two groups, is bad too.
    """
    name = str(path)
    default = annotator or default_annotator(cfg)
    rows = _parse_csv(conn, cfg, name, _read_text(name), default)
    events = 0
    grouped: set[str] = set()
    with catalog.atomic(conn):
        for row in rows:
            if row.group is not None and row.sha256 not in grouped:
                conn.execute("UPDATE sources SET group_id = ? WHERE sha256 = ?", (row.group, row.sha256))
                grouped.add(row.sha256)
            previous = annotator_label(conn, row.sha256, row.annotator)
            if row.label is None or previous == row.label:
                continue
            _insert(conn, row.sha256, row.annotator, row.label, previous, "import")
            events += 1
    return ImportResult(name, len(rows), events, len(grouped))


def _read_text(name: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise InputError(f"{name}: no such file", path=name) from err
    except IsADirectoryError as err:
        raise InputError(f"{name}: is a folder, not a CSV file", path=name) from err
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: not UTF-8 text", path=name) from err


def _parse_csv(conn: sqlite3.Connection, cfg: Config, name: str, text: str, default: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InputError(f"{name}: empty file; expected a header row", path=name) from None
    except csv.Error as err:
        raise InputError(f"{name} row 1: malformed CSV ({err})", path=name) from err
    image_col = next((c for c in ("sha256", "url", "source_url") if c in header), None)
    if image_col is None or not {"label", "group_id"} & set(header):
        raise InputError(
            f"{name} row 1: the header needs a 'label' or 'group_id' column and a 'sha256' or 'url' column",
            path=name,
        )
    col = {h: i for i, h in enumerate(header)}
    known = set(valid_labels(cfg))
    rows: list[_Row] = []
    groups: dict[str, tuple[str, int]] = {}  # image -> (group, row number)
    seen: dict[tuple[str, str], _Row] = {}
    number = 1
    try:
        for number, fields in enumerate(reader, start=2):
            fields = [_unescape_cell(f) for f in fields]
            if not any(f.strip() for f in fields):
                continue  # blank line
            where = f"{name} row {number}"
            if len(fields) != len(header):
                raise InputError(f"{where}: expected {len(header)} columns, found {len(fields)}", path=name)
            label = fields[col["label"]].strip() if "label" in col else None
            if label == "":
                raise InputError(f"{where}: empty label", path=name)
            if label is not None and label not in known:
                raise InputError(f"{where}: unknown class {label!r}", path=name)
            group = fields[col["group_id"]].strip() if "group_id" in col else None
            if group == "":
                raise InputError(f"{where}: empty group_id", path=name)
            sha = _find_image(conn, fields, col, where, name)
            if group is not None:
                earlier = groups.setdefault(sha, (group, number))
                if earlier[0] != group:
                    raise InputError(
                        f"{where}: image {sha[:12]} is in group {group!r} here but in group "
                        f"{earlier[0]!r} on row {earlier[1]}",
                        path=name,
                    )
            who = fields[col["annotator"]].strip() if "annotator" in col else ""
            rows.append(_checked_row(_Row(number, sha, label, who or default, group), seen, where, name))
    except csv.Error as err:
        raise InputError(f"{name} row {number + 1}: malformed CSV ({err})", path=name) from err
    return rows


def _checked_row(row: _Row, seen: dict[tuple[str, str], _Row], where: str, name: str) -> _Row:
    """Refuse the reserved annotator, and two rows that disagree for one image and annotator."""
    if row.annotator == HINT_ANNOTATOR:
        raise InputError(f"{where}: annotator 'hint' is reserved for accepted ingest hints", path=name)
    first = seen.setdefault((row.sha256, row.annotator), row)
    if first.label != row.label:
        raise InputError(
            f"{name} rows {first.number} and {row.number}: conflicting labels for image {row.sha256[:12]} "
            f"by {row.annotator!r} ({first.label!r}, {row.label!r})", path=name)
    return row


# OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _unescape_cell(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


def _find_image(
    conn: sqlite3.Connection, fields: list[str], col: dict[str, int], where: str, name: str
) -> str:
    sha = fields[col["sha256"]].strip().lower() if "sha256" in col else ""
    if sha:
        if conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha,)).fetchone() is None:
            raise InputError(f"{where}: unknown image sha256 {sha!r}", path=name)
        return sha
    url_col = "url" if "url" in col else "source_url" if "source_url" in col else None
    url = fields[col[url_col]].strip() if url_col else ""
    if not url:
        raise InputError(f"{where}: no sha256 or url given", path=name)
    row = conn.execute(
        "SELECT sha256 FROM sources WHERE locator = ? AND sha256 IS NOT NULL", (url,)
    ).fetchone()
    if row is None:
        raise InputError(f"{where}: unknown image url {url!r}", path=name)
    return str(row[0])


def source_urls(conn: sqlite3.Connection) -> dict[str, str]:
    """sha256 -> the first source that gave this image (URL, or the local path)."""
    result: dict[str, str] = {}
    for sha, locator in conn.execute(
        "SELECT sha256, locator FROM sources WHERE sha256 IS NOT NULL ORDER BY (kind != 'url'), id"
    ):
        result.setdefault(sha, locator)
    return result


EXPORT_COLUMNS = ("sha256", "source_url", "label", "annotator")


def export_csv(conn: sqlite3.Connection, cfg: Config, path: str | Path) -> int:
    """Write every annotator's current label per image (columns sha256, source_url, label,
    annotator; not the reserved ``hint``), atomically; return the number of rows. Cells a
    spreadsheet would run as formulas get a leading ``'``; ``import_csv`` reads it back."""
    state = load_state(conn)
    urls = source_urls(conn)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for sha in state.created:
        for who, label in sorted(state.votes.get(sha, {}).items()):
            if who == HINT_ANNOTATOR:  # hints come from ingest (--accept-hints), not from a file
                continue
            writer.writerow([_escape_cell(cell) for cell in (sha, urls.get(sha, ""), label, who)])
            count += 1
    write_atomic(Path(path), buf.getvalue())
    return count


# ---------------------------------------------------------------------------------------------
# Summary for `curator status`


def summary(conn: sqlite3.Connection, cfg: Config) -> dict[str, object]:
    """Counts per cluster (its representative): per class, excluded, unlabeled, unresolved
    ties; events per annotator; agreement between people (annotator 'hint' left out), over
    all clusters and over the blind subset alone."""
    state = load_state(conn)
    own = _own_labels(state, cfg)
    per_class = {c: 0 for c in cfg.dataset.classes}
    excluded = unlabeled = unresolved = 0
    for cid in state.members:
        label = _cluster_label(state, own, cid)
        if label == EXCLUDED:
            excluded += 1
        elif label in per_class:
            per_class[label] += 1
        elif any(sha in own and own[sha] is None for sha in state.members[cid]):
            unresolved += 1
        else:
            unlabeled += 1
    annotators = Counter(a for votes in state.votes.values() for a in votes)
    people = sorted(a for a in annotators if a != HINT_ANNOTATOR)
    ratings: dict[str, dict[str, str]] = {}
    for who in people:
        for cid, label in annotator_cluster_labels(state, who).items():
            ratings.setdefault(str(cid), {})[who] = label
    measured = agreement.measure(ratings)
    shown, recorded = conn.execute(
        "SELECT COALESCE(SUM(suggested), 0), COUNT(suggested) FROM label_events "
        "WHERE action IN ('label', 'exclude') AND suggested IS NOT NULL"
    ).fetchone()
    return {
        "images": len(state.created),
        "clusters": len(state.members),
        "labeled": sum(per_class.values()),
        "per_class": per_class,
        "excluded": excluded,
        "unlabeled": unlabeled,
        "unresolved": unresolved,
        "annotators": dict(sorted(annotators.items())),
        "agreement": None if measured is None else measured.as_dict(),
        # Label decisions at the prompt or page (events that record it) and how many showed a suggestion.
        "suggested": {"shown": int(shown), "recorded": int(recorded)},
        "blind": _blind_summary(state, cfg, ratings),
    }


def _blind_summary(state: State, cfg: Config, ratings: dict[str, dict[str, str]]) -> dict[str, object]:
    """The clusters that never show a suggestion or hint, the people's labels given on them,
    and agreement there alone (None: no blind cluster has two annotators). A label given with
    a suggestion on screen after all (a review of a label issue) is left out."""
    blind = {cid: state.members[cid] for cid, rep in state.representative.items()
             if suggest.is_blind(rep, cfg.labels.blind_fraction)}
    there: dict[str, dict[str, str]] = {}
    anchored = 0
    for cid, members in blind.items():
        for who, label in ratings.get(str(cid), {}).items():
            if any((sha, who) in state.suggested for sha in members):
                anchored += 1
            else:
                there.setdefault(str(cid), {})[who] = label
    measured = agreement.measure(there)
    return {
        "fraction": cfg.labels.blind_fraction,
        "clusters": len(blind),
        "labels": sum(len(votes) for votes in there.values()),
        "with_suggestion": anchored,  # left out of "labels" and "agreement"
        "agreement": None if measured is None else measured.as_dict(),
    }


# ---------------------------------------------------------------------------------------------
# What the prompt shows


@dataclass(frozen=True)
class Item:
    """One image to label: a cluster's representative (or, when reviewing, any image)."""

    sha256: str
    cluster_id: int
    width: int
    height: int
    format: str
    bytes: int
    source: str
    hint: str  # the raw hint text(s), '' if none
    label: str | None  # the effective current label
    mine: str | None  # this annotator's current label
    blind: bool = False  # in the blind subset: show no suggestion, hint or other label
    suggestion: suggest.Top | None = None  # the latest model's top two (None for blind images)


def queue(conn: sqlite3.Connection, cfg: Config, annotator: str, *, review_class: str | None = None,
          conflicts: bool = False, order: str = "ingest") -> list[Item]:
    """The images to show, in order.

    Default: one representative per cluster this annotator has not labeled yet.
    ``review_class``: representatives whose current label is that class (or EXCLUDED).
    ``conflicts``: representatives of clusters whose annotators disagree, whose label
    disagrees with a member's hint, or whose members carry different labels.
    ``order``: ingest (oldest first), random (a fixed shuffle per annotator, so a
    resumed session keeps its order), hint (grouped by hint, no hint and blind images
    last), or uncertain (the latest model's smallest margin top1 - top2 first; clusters
    without probabilities last; InputError when none are stored).
    """
    if order not in ORDERS:
        raise InputError(f"order: {order!r} is not one of {', '.join(ORDERS)}", key="order", value=order,
                         reason="unknown-order")
    if review_class is not None and review_class not in valid_labels(cfg):
        classes = ", ".join(cfg.dataset.classes)
        raise InputError(f"review_class: unknown class {review_class!r} (classes: {classes})",
                         key="review_class", value=review_class, reason="unknown-class")
    state = load_state(conn)
    effective = _effective(state, cfg)
    mine = annotator_cluster_labels(state, annotator)
    if conflicts:
        chosen = [cid for cid in state.members if _in_conflict(state, cfg, effective, cid)]
    elif review_class is not None:
        chosen = [cid for cid in state.members if effective.get(state.representative[cid]) == review_class]
    else:
        chosen = [cid for cid in state.members if cid not in mine]
    tops = suggest.required(conn, cfg.dataset.classes, "--order uncertain") if order == "uncertain" \
        else suggest.top_two(conn, cfg.dataset.classes)
    reps = [state.representative[cid] for cid in chosen]
    reps.sort(key=lambda sha: (state.created[sha], sha))
    blind = {sha for sha in reps if suggest.is_blind(sha, cfg.labels.blind_fraction)}
    cluster_top = {sha: _cluster_top(state, tops, sha) for sha in reps}
    if order == "random":
        random.Random(f"curator-label:{annotator}").shuffle(reps)
    elif order == "hint":
        shown = {sha: [] if sha in blind else state.hints.get(sha, []) for sha in reps}
        reps.sort(key=lambda sha: (not shown[sha], ", ".join(shown[sha]).lower()))
    elif order == "uncertain":
        reps.sort(key=lambda sha: (cluster_top[sha] is None, suggest.margin(cluster_top[sha] or _NO_TOP)))
    items = _items(conn, state, effective, mine, reps)
    return [replace(item, blind=True) if item.sha256 in blind
            else replace(item, suggestion=cluster_top[item.sha256]) for item in items]


_NO_TOP: suggest.Top = (("", 0.0), ("", 0.0))


def _cluster_top(state: State, tops: dict[str, suggest.Top], rep: str) -> suggest.Top | None:
    """The representative's top two, else those of its first member (ingest order) that has some."""
    for sha in (rep, *state.members[state.cluster_of[rep]]):
        if sha in tops:
            return tops[sha]
    return None


def _in_conflict(state: State, cfg: Config, effective: dict[str, str], cid: int) -> bool:
    members = state.members[cid]
    own = {m: resolve(state.votes[m], cfg) for m in members if m in state.votes}
    for m in members:
        people = {v for a, v in state.votes.get(m, {}).items() if a != HINT_ANNOTATOR}
        if len(people) > 1:
            return True  # annotators disagree (resolved or not)
        hinted = hint_class(state.hints.get(m, []), cfg)
        label = effective.get(m)
        if hinted is not None and label is not None and label != EXCLUDED and label != hinted:
            return True
    return len({v for v in own.values()}) > 1


def _items(conn: sqlite3.Connection, state: State, effective: dict[str, str], mine: dict[int, str],
           shas: list[str]) -> list[Item]:
    urls = source_urls(conn)
    meta = {
        row[0]: row
        for row in conn.execute("SELECT sha256, width, height, format, bytes FROM images")
    }
    items = []
    for sha in shas:
        _, width, height, fmt, size = meta[sha]
        cid = state.cluster_of[sha]
        items.append(Item(sha, cid, width, height, fmt, size, urls.get(sha, ""),
                          ", ".join(state.hints.get(sha, [])), effective.get(sha), mine.get(cid)))
    return items
