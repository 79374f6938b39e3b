"""Pareto front, hypervolume and knee point: pure functions over a table of objective values.

Every function takes ``values`` as ``[n, k]`` (one row per candidate, one column per objective)
and ``directions`` as one ``"maximize"`` / ``"minimize"`` per column, the same words Optuna
uses, so callers pass a study's directions straight through. Internally everything is turned
into minimisation by negating maximised columns, so each algorithm is written once.

Rows with a NaN in any objective (a trial that was never trained has no accuracy) are never on
the front and never dominate another row: a missing number is not evidence of being better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIRECTIONS = ("maximize", "minimize")

ArrayLike = np.ndarray | Sequence[Sequence[float]]


def pareto_mask(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """True for each row that no other row dominates.

    A row dominates another when it is at least as good in every objective and strictly better
    in one. Identical rows therefore do not dominate each other and are all kept: the front
    shows every trial that reached a best trade-off, not an arbitrary one of the twins.

    O(n^2 k) time and memory (one vectorised pairwise comparison); fine for the few thousand
    trials a search produces.
    """
    loss = _as_loss(values, directions)
    n = loss.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    valid = ~np.isnan(loss).any(axis=1)
    mask = np.zeros(n, dtype=bool)
    finite = loss[valid]
    # no_worse[i, j]: row i is at least as good as row j everywhere; better: somewhere strictly.
    no_worse = (finite[:, None, :] <= finite[None, :, :]).all(axis=2)
    better = (finite[:, None, :] < finite[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    mask[valid] = ~dominated
    return mask


def hypervolume(values: ArrayLike, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Volume of objective space dominated by the points and bounded by ``reference``.

    ``reference`` is given in the objectives' own units and directions (e.g. accuracy 0.5 and
    latency 10 ms). Points not strictly better than the reference in every objective add no
    volume and are ignored, as are rows with NaN.

    Exact for any k by recursive slicing (HSO): sort by the last objective, cut the space into
    slabs between consecutive values, and add slab thickness x the (k-1)-dimensional volume of
    the points inside it. k=1 is a difference, k=2 a sweep in O(n log n), k=3 costs
    O(n^2 log n), k objectives O(n^(k-1) log n). We do not call Optuna's hypervolume because it
    lives in a private module (``optuna._hypervolume``) that may change without notice.
    """
    loss = _as_loss(values, directions)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (loss.shape[1],):
        raise ValueError(f"reference has {ref.size} values, expected {loss.shape[1]}")
    ref = np.where(np.array([d == "maximize" for d in directions]), -ref, ref)
    if loss.shape[0] == 0:
        return 0.0
    keep = ~np.isnan(loss).any(axis=1) & (loss < ref).all(axis=1)
    points = loss[keep]
    if points.shape[0] == 0:
        return 0.0
    # Dominated points add nothing; dropping them keeps the recursion small.
    points = np.unique(points[pareto_mask(points, ["minimize"] * points.shape[1])], axis=0)
    return float(_hv_min(points, ref))


def knee_point(values: ArrayLike, directions: Sequence[str]) -> int | None:
    """Index (into ``values``) of the front member closest to the ideal point.

    Each objective is scaled to [0, 1] over the front (best = 0, worst = 1) so that
    milliseconds and kilobytes weigh the same; the knee is the member with the smallest
    Euclidean distance to (0, ..., 0): a geometric balance, blind to how much of any
    objective an application needs (a front reaching down to near-chance accuracy may
    have its knee there). An objective that is
    constant over the front scales to 0. Ties go to the lowest index. None when there is no
    front (empty input, or every row has a NaN).
    """
    loss = _as_loss(values, directions)
    front = np.flatnonzero(pareto_mask(loss, ["minimize"] * loss.shape[1]))
    if front.size == 0:
        return None
    members = loss[front]
    low, high = members.min(axis=0), members.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (members - low) / span
    return int(front[np.argmin(np.linalg.norm(scaled, axis=1))])


def _as_loss(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """``values`` as a float ``[n, k]`` array to minimise; validates shape and directions."""
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown:
        raise ValueError(f"directions must be 'maximize' or 'minimize', got {unknown[0]!r}")
    k = len(directions)
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return np.zeros((0, k))
    if array.ndim != 2 or array.shape[1] != k:
        raise ValueError(f"values must have shape [n, {k}], got {list(array.shape)}")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return array * sign


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of ``points`` (all strictly below ``ref``) for minimisation."""
    n, k = points.shape
    if n == 0:
        return 0.0
    if k == 1:
        return float(ref[0] - points[:, 0].min())
    if k == 2:
        # Sweep in x: each point adds the strip from its y up to the best y seen so far.
        order = np.argsort(points[:, 0], kind="stable")
        xs, ys = points[order, 0], points[order, 1]
        best_y = np.minimum.accumulate(ys)
        ceiling = np.concatenate([[ref[1]], best_y[:-1]])
        return float(((ref[0] - xs) * np.clip(ceiling - ys, 0.0, None)).sum())
    # Slabs along the last objective: between z[i] and the next z, points 0..i are present.
    order = np.argsort(points[:, -1], kind="stable")
    sorted_points = points[order]
    z = sorted_points[:, -1]
    upper = np.concatenate([z[1:], [ref[-1]]])
    total = 0.0
    for i in range(n):
        thickness = upper[i] - z[i]
        if thickness > 0:
            total += thickness * _hv_min(sorted_points[: i + 1, :-1], ref[:-1])
    return total
