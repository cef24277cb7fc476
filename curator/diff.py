"""What changed between two releases, from their manifests (original rows only).

    added        in the new release, not in the old
    removed      in the old release, not in the new
    relabelled   in both, with a different label
    moved        in both, in a different split: must never happen (splits are sticky)

Used by ``curator diff vA vB`` and by the card's changelog, so both say the same.
Augmented rows are left out: they follow their source image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curator.released import Manifest, read_release
from curator.workspace import Workspace


@dataclass
class Diff:
    old: str | None
    new: str
    added: list[dict[str, Any]] = field(default_factory=list)  # {sha256, label, split}
    removed: list[dict[str, Any]] = field(default_factory=list)  # {sha256, label, split}
    relabelled: list[dict[str, Any]] = field(default_factory=list)  # {sha256, old, new, split}
    moved: list[dict[str, Any]] = field(default_factory=list)  # {sha256, old, new, label}
    classes_added: list[str] = field(default_factory=list)
    classes_removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.relabelled or self.moved
                    or self.classes_added or self.classes_removed)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "relabelled": len(self.relabelled),
            "moved": len(self.moved),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "counts": self.counts(),
            "classes_added": self.classes_added,
            "classes_removed": self.classes_removed,
            "added": self.added,
            "removed": self.removed,
            "relabelled": self.relabelled,
            "moved": self.moved,
        }


def compare(old: Manifest | None, new: Manifest) -> Diff:
    """The difference between two manifests (``old`` None: everything is added)."""
    before = old.originals() if old else {}
    after = new.originals()
    result = Diff(old=old.version if old else None, new=new.version)
    if old:
        result.classes_added = [c for c in new.classes if c not in old.classes]
        result.classes_removed = [c for c in old.classes if c not in new.classes]
    for sha in sorted(after.keys() - before.keys()):
        r = after[sha]
        result.added.append({"sha256": sha, "label": r["label"], "split": r["split"]})
    for sha in sorted(before.keys() - after.keys()):
        r = before[sha]
        result.removed.append({"sha256": sha, "label": r["label"], "split": r["split"]})
    for sha in sorted(after.keys() & before.keys()):
        a, b = before[sha], after[sha]
        if a["label"] != b["label"]:
            result.relabelled.append(
                {"sha256": sha, "old": a["label"], "new": b["label"], "split": b["split"]}
            )
        if a["split"] != b["split"]:
            result.moved.append({"sha256": sha, "old": a["split"], "new": b["split"], "label": b["label"]})
    return result


def diff_versions(ws: Workspace, a: str, b: str) -> Diff:
    """``curator diff vA vB``: both versions must be built in this workspace."""
    return compare(read_release(ws, a).manifest, read_release(ws, b).manifest)
