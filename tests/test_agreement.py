"""Agreement statistics against examples computed by hand (the arithmetic is in each test)."""

from __future__ import annotations

import pytest

from curator import agreement, labeling
from curator.workspace import Workspace
from tests.conftest import run_cli
from tests.test_labeling import add_image


def test_cohen_kappa_two_by_two() -> None:
    # 50 items:          B yes   B no
    #           A yes      20      5     (A says yes 25/50 = .5)
    #           A no       10     15     (B says yes 30/50 = .6)
    # p_o = (20 + 15) / 50 = .7;  p_e = .5 * .6 + .5 * .4 = .5;  kappa = (.7 - .5) / (1 - .5) = .4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert agreement.cohen_kappa(pairs) == pytest.approx(0.4)
    assert agreement.landis_koch(0.4) == "fair"


def test_cohen_kappa_perfect_and_undefined() -> None:
    assert agreement.cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    # Both always say 'a': p_e = 1, kappa is 0/0.
    assert agreement.cohen_kappa([("a", "a"), ("a", "a")]) is None
    assert agreement.cohen_kappa([]) is None


def test_fleiss_kappa_wikipedia_example() -> None:
    # Fleiss (1971) as on Wikipedia: 10 items, 14 raters, 5 categories; counts n_ij per item.
    # p_j = (.143, .200, .279, .150, .229); P_e = sum p_j^2 = .213; P_bar = .378;
    # kappa = (.378 - .213) / (1 - .213) = .210
    counts = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    items = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in counts]
    assert agreement.fleiss_kappa(items) == pytest.approx(0.20993, abs=1e-5)
    assert agreement.landis_koch(0.20993) == "fair"


def test_fleiss_kappa_small_by_hand() -> None:
    # 3 raters, 2 items: item 1 = a,a,a (P_1 = (9 - 3) / 6 = 1); item 2 = a,b,b (P_2 = (1 + 4 - 3) / 6 = 1/3).
    # P_bar = 2/3; p_a = 4/6, p_b = 2/6; P_e = 16/36 + 4/36 = 5/9; kappa = (2/3 - 5/9) / (4/9) = 1/4
    assert agreement.fleiss_kappa([["a", "a", "a"], ["a", "b", "b"]]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        agreement.fleiss_kappa([["a", "a"], ["a", "b", "b"]])


def test_krippendorff_alpha_by_hand() -> None:
    # Units: [a, a], [a, b], [b, b, b], [a] (one rating: not pairable, ignored).
    # Coincidences o_ck = pairs / (m_u - 1):
    #   [a,a]: o_aa += 2*1/1 = 2;  [a,b]: o_ab += 1, o_ba += 1;  [b,b,b]: o_bb += 3*2/2 = 3
    # n_a = 2 + 1 = 3, n_b = 1 + 3 = 4, n = 7
    # alpha = 1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k = 1 - 6 * 2 / (2 * 3 * 4) = 0.5
    units = [["a", "a"], ["a", "b"], ["b", "b", "b"], ["a"]]
    assert agreement.krippendorff_alpha(units) == pytest.approx(0.5)
    assert agreement.krippendorff_alpha([["a", "a"], ["a", "a", "a"]]) is None  # no variation
    assert agreement.krippendorff_alpha([["a"]]) is None


@pytest.mark.parametrize(
    ("value", "reading"),
    [(-0.1, "poor"), (0.0, "slight"), (0.2, "slight"), (0.21, "fair"), (0.4, "fair"),
     (0.41, "moderate"), (0.6, "moderate"), (0.61, "substantial"), (0.8, "substantial"),
     (0.81, "almost perfect"), (1.0, "almost perfect"), (None, "undefined")],
)
def test_landis_koch_readings(value: float | None, reading: str) -> None:
    assert agreement.landis_koch(value) == reading


def test_measure_picks_the_method() -> None:
    two = {"1": {"ann": "a", "bob": "a"}, "2": {"ann": "b", "bob": "a"}, "3": {"ann": "c"}}
    # Only items 1 and 2 overlap: pairs (a,a), (b,a); p_o = .5, p_e = .5*1 + .5*0 = .5 -> 0
    found = agreement.measure(two)
    assert found is not None
    assert (found.method, found.items, found.annotators) == ("cohen", 2, ("ann", "bob"))
    assert found.value == pytest.approx(0.0)
    full = {"1": {"a": "x", "b": "x", "c": "x"}, "2": {"a": "x", "b": "y", "c": "y"}}
    assert agreement.measure(full).method == "fleiss"  # type: ignore[union-attr]
    assert agreement.measure(full).value == pytest.approx(0.25)  # type: ignore[union-attr]
    partial = {"1": {"a": "a", "b": "a"}, "2": {"a": "a", "c": "b"}, "3": {"b": "b", "c": "b", "a": "b"}}
    found = agreement.measure(partial)
    assert found is not None and found.method == "krippendorff"
    # the units of test_krippendorff_alpha_by_hand, less the single rating
    assert found.value == pytest.approx(0.5)
    assert agreement.measure({"1": {"ann": "a"}}) is None


def test_status_shows_labels_and_agreement(workspace: Workspace) -> None:
    shas = [add_image(workspace, s, hint="alopecia") for s in range(5)]
    conn = workspace.conn
    # ann: a a p p ; bob: a p p p (image 4 by ann only).
    # p_o = 3/4; ann a = .5, p = .5; bob a = .25, p = .75; p_e = .5*.25 + .5*.75 = .5; kappa = .5
    for sha, label in zip(shas, ["alopecia", "alopecia", "psoriasis", "psoriasis", "alopecia"], strict=True):
        labeling.record(conn, sha, "ann", label, "label")
    for sha, label in zip(shas[:4], ["alopecia", "psoriasis", "psoriasis", "psoriasis"], strict=True):
        labeling.record(conn, sha, "bob", label, "label")
    assert labeling.accept_hints(conn, workspace.config) == 5  # 'hint' is left out of agreement
    workspace.close()
    result = run_cli("status", workspace=workspace.root)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # image 2 is a 1-1 tie (unresolved); images 1, 5 alopecia; 3, 4 psoriasis
    assert ("Labels (per cluster): alopecia 2, psoriasis 2, folliculitis 0; excluded 0; unlabeled 0; "
            "unresolved ties 1") in lines
    assert "Annotators (images labeled): ann 5, bob 4, hint 5" in lines
    assert ("Agreement: Cohen's kappa 0.500 over 4 overlapping clusters (ann, bob): moderate") in lines
