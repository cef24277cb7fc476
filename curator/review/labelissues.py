"""Label issues by confident learning (Northcutt, Jiang and Chuang, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 70, 2021), written here from the paper.

Given out-of-sample predicted probabilities ``probs`` (n x k) and given labels (n):

1. per-class thresholds ``t_j``: the mean probability of class j over the images labelled j;
2. the confident joint ``C[i][j]``: images labelled i whose probability of j reaches
   ``t_j`` (the likeliest such j when several do) - the images confidently "really j";
3. calibrate ``C`` so each row sums to the number of images labelled i, and take its
   off-diagonal share as the estimated joint of given and true labels ``Q``;
4. prune by noise rate: for each i != j, the ``round(n * Q[i][j])`` images labelled i
   with the largest margin ``p_j - p_i`` are label issues (suggested label j);
5. rank the issues by self-confidence ``p_i`` (lowest first) or by normalised margin
   ``p_i - max_{j != i} p_j``.

Everything is array arithmetic over n and a k x k loop: 10,000 images in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERSION = "confident-learning-1"
RANKINGS = ("self-confidence", "normalized-margin")


@dataclass(frozen=True)
class Issue:
    index: int  # row of probs
    given: int
    suggested: int
    quality: float  # self-confidence or normalised margin, in [0, 1]; lower: likelier an error


def thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    return np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, confident): the k x k confident joint, and each image's confident class (-1: none)."""
    k = probs.shape[1]
    above = probs >= thresholds(probs, labels)[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint = np.zeros((k, k), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint, confident


def label_quality(probs: np.ndarray, labels: np.ndarray, ranking: str) -> np.ndarray:
    """Per image, higher is a likelier correct label (both rankings lie in [0, 1])."""
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    if ranking == "self-confidence":
        return given
    others = probs.copy()
    others[rows, labels] = -np.inf
    return (given - others.max(axis=1) + 1.0) / 2.0


def find_issues(probs: np.ndarray, labels: np.ndarray, ranking: str = "self-confidence") -> list[Issue]:
    """The label issues among ``labels`` given ``probs``, likeliest first."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {RANKINGS}")
    n, k = probs.shape
    joint, _ = confident_joint(probs, labels)
    per_label = np.bincount(labels, minlength=k).astype(np.float64)
    row_sums = joint.sum(axis=1, keepdims=True).astype(np.float64)
    calibrated = np.divide(joint * per_label[:, None], row_sums, out=np.zeros((k, k)), where=row_sums > 0)
    estimated = calibrated / max(calibrated.sum(), 1.0)
    chosen: dict[int, int] = {}
    for i in range(k):
        mine = np.flatnonzero(labels == i)
        for j in range(k):
            prune = int(round(n * estimated[i, j]))
            if i == j or prune == 0 or len(mine) == 0:
                continue
            margin = probs[mine, j] - probs[mine, i]
            # Only where class j beats the given one: an image the model agrees with is no issue.
            for pos in np.argsort(-margin, kind="stable")[:prune]:
                if margin[pos] > 0:
                    chosen.setdefault(int(mine[pos]), j)
    quality = label_quality(probs, labels, ranking)
    issues = [Issue(index, int(labels[index]), suggested, float(quality[index]))
              for index, suggested in chosen.items()]
    return sorted(issues, key=lambda issue: (issue.quality, issue.index))
