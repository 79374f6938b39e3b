"""Tables of hand-checked cases for the Pareto front, hypervolume and knee point."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.pareto import hypervolume, knee_point, pareto_mask

MAX, MIN = "maximize", "minimize"
NAN = math.nan


@pytest.mark.parametrize(
    ("values", "directions", "expected"),
    [
        pytest.param([], [MIN, MIN], [], id="empty"),
        pytest.param([[1.0, 2.0]], [MIN, MIN], [True], id="single"),
        pytest.param(
            [[1, 3], [2, 2], [3, 1], [3, 3]], [MIN, MIN], [True, True, True, False], id="2d-min"
        ),
        # accuracy up, latency down: (0.9, 5) beats (0.8, 6); (0.95, 9) is the slow accurate one.
        pytest.param(
            [[0.9, 5.0], [0.8, 6.0], [0.95, 9.0], [0.7, 1.0]],
            [MAX, MIN],
            [True, False, True, True],
            id="2d-mixed",
        ),
        pytest.param([[2, 2], [2, 2], [1, 3]], [MIN, MIN], [True, True, True], id="equal-rows"),
        pytest.param(
            [[1, 1], [3, 3], [3, 3]], [MIN, MIN], [True, False, False], id="dominated-duplicate"
        ),
        # Equal in one objective, better in the other: still dominates.
        pytest.param([[1, 2], [1, 3]], [MIN, MIN], [True, False], id="tie-in-one"),
        pytest.param(
            [[0.9, 5, 100], [0.9, 5, 120], [0.8, 4, 200], [0.95, 8, 90], [0.8, 6, 200]],
            [MAX, MIN, MIN],
            [True, False, True, True, False],
            id="3d-mixed",
        ),
        pytest.param(
            [[0.9, 5.0], [NAN, 1.0], [0.8, 6.0]], [MAX, MIN], [True, False, False], id="nan-row"
        ),
    ],
)
def test_pareto_mask(values, directions, expected):
    mask = pareto_mask(values, directions)
    assert mask.dtype == bool
    assert mask.tolist() == expected


def test_pareto_mask_accepts_numpy_and_rejects_bad_input():
    assert pareto_mask(np.array([[1.0, 2.0], [2.0, 1.0]]), [MIN, MIN]).all()
    with pytest.raises(ValueError, match="directions"):
        pareto_mask([[1, 2]], ["minimise", MIN])
    with pytest.raises(ValueError, match="shape"):
        pareto_mask([[1, 2, 3]], [MIN, MIN])


@pytest.mark.parametrize(
    ("values", "directions", "reference", "expected"),
    [
        pytest.param([], [MIN, MIN], [4, 4], 0.0, id="empty"),
        pytest.param([[1, 3], [2, 2], [3, 1]], [MIN, MIN], [4, 4], 6.0, id="2d-staircase"),
        # A dominated point and a duplicate add nothing.
        pytest.param(
            [[1, 3], [2, 2], [3, 1], [3, 3], [2, 2]], [MIN, MIN], [4, 4], 6.0, id="2d-extra-points"
        ),
        # The same staircase with the first objective maximised (stored negated).
        pytest.param(
            [[-1, 3], [-2, 2], [-3, 1]], [MAX, MIN], [-4, 4], 6.0, id="2d-maximize-negated"
        ),
        # accuracy 0.9 at 2 ms and 0.8 at 1 ms, reference (0.5, 4 ms): 0.4*2 + 0.3*1.
        pytest.param([[0.9, 2.0], [0.8, 1.0]], [MAX, MIN], [0.5, 4.0], 1.1, id="2d-accuracy"),
        # Points on or beyond the reference are ignored.
        pytest.param([[1, 3], [4, 0], [5, 5]], [MIN, MIN], [4, 4], 3.0, id="2d-outside-ref"),
        pytest.param([[1, 1, 1]], [MIN, MIN, MIN], [2, 3, 4], 6.0, id="3d-single-box"),
        # Boxes from (1,0,0) and (0,1,0) to (2,2,2), by inclusion-exclusion: 4 + 4 - 2 = 6.
        pytest.param([[1, 0, 0], [0, 1, 0]], [MIN, MIN, MIN], [2, 2, 2], 6.0, id="3d-two-boxes"),
        # Unit-cube corners (1,0,0), (0,1,0), (0,0,1) against (2,2,2): 8 - 1 = 7.
        pytest.param(
            [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [MIN, MIN, MIN], [2, 2, 2], 7.0, id="3d-corners"
        ),
        # The same corners with the last objective maximised (stored negated, reference too).
        pytest.param(
            [[1, 0, 0], [0, 1, 0], [0, 0, -1]], [MIN, MIN, MAX], [2, 2, -2], 7.0, id="3d-mixed"
        ),
    ],
)
def test_hypervolume(values, directions, reference, expected):
    assert hypervolume(values, directions, reference) == pytest.approx(expected)


def test_hypervolume_matches_brute_force_grid():
    """Integer points: the volume is the number of unit cells some point dominates."""
    rng = np.random.default_rng(0)
    for k in (2, 3):
        for _ in range(20):
            points = rng.integers(0, 5, size=(rng.integers(1, 12), k))
            cells = np.stack(np.meshgrid(*[np.arange(5)] * k, indexing="ij"), -1).reshape(-1, k)
            covered = (points[None, :, :] <= cells[:, None, :]).all(axis=2).any(axis=1)
            assert hypervolume(points, [MIN] * k, [5] * k) == pytest.approx(covered.sum())


def test_hypervolume_rejects_wrong_reference():
    with pytest.raises(ValueError, match="reference"):
        hypervolume([[1, 2]], [MIN, MIN], [3])


@pytest.mark.parametrize(
    ("values", "directions", "expected"),
    [
        pytest.param([], [MAX, MIN], None, id="empty"),
        pytest.param([[NAN, 1.0]], [MAX, MIN], None, id="only-nan"),
        pytest.param([[0.9, 3.0]], [MAX, MIN], 0, id="single"),
        # Row 3 is dominated. Over the front acc 0.70..0.95 and latency 1..11 scale to
        # row 0 -> (1, 0), row 1 -> (0.2, 0.1), row 2 -> (0, 1): the balanced row 1 wins.
        pytest.param(
            [[0.70, 1.0], [0.90, 2.0], [0.95, 11.0], [0.60, 12.0]],
            [MAX, MIN],
            1,
            id="2d-knee",
        ),
        # Row 0 is dominated by row 1. Scaled: row 1 -> (0, 1, 1), row 2 -> (.33, .44, .5),
        # row 3 -> (1, 0, 0).
        pytest.param(
            [[0.5, 10.0, 100.0], [0.9, 10.0, 100.0], [0.8, 5.0, 60.0], [0.6, 1.0, 20.0]],
            [MAX, MIN, MIN],
            2,
            id="3d-knee",
        ),
        # A constant objective scales to 0 instead of dividing by zero; a tie goes to row 0.
        pytest.param(
            [[0.9, 5.0, 1.0], [0.8, 5.0, 0.5]], [MAX, MIN, MIN], 0, id="constant-objective"
        ),
    ],
)
def test_knee_point(values, directions, expected):
    assert knee_point(values, directions) == expected
