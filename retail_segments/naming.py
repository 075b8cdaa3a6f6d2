"""Segment names from cluster profiles, matched to archetypes (``seeds/segment_archetypes.csv``).

Naming rule (``name_clusters``):

1. Levels. For each cluster take its mean ``recency_days``, ``frequency`` and ``monetary``. Within
   each of the three measures rank the clusters ascending (ties get their average rank) and scale
   the rank to ``level = (rank - 1) / (k - 1)``: 0 = lowest mean among the clusters, 1 = highest
   (a single cluster gets 0.5). Recency is days since the last purchase, so a recent cluster has
   a LOW recency level.
2. Cost. The cost of giving cluster ``i`` the name of archetype ``j`` is the Euclidean distance
   between the cluster's three levels and the archetype's three levels.
3. Assignment. ``scipy.optimize.linear_sum_assignment`` finds the one-to-one matching of clusters
   to archetypes with the minimal total cost, so no two clusters share a name.
   - k <= number of archetypes: every cluster gets an archetype; the best-fitting subset of the
     archetypes is used.
   - k > number of archetypes: every archetype is used once, by the clusters that minimise the
     total cost; each remaining cluster gets the name of its nearest archetype followed by
     `` (2)``, `` (3)``, ... numbered in ascending ``cluster_id`` order per base name (e.g.
     ``lost (2)``), and that archetype's strategy. The result is still unique.
   Rows (clusters) enter the cost matrix in ``cluster_id`` order and columns (archetypes) in
   ``segment_name`` order, so the result is deterministic; since cluster ids come from a
   label-independent ordering rule, names do not depend on the raw labels an algorithm emitted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

STAGES: tuple[str, ...] = ("pca", "tsne")
LEVEL_COLUMNS: tuple[str, ...] = ("recency_level", "frequency_level", "monetary_level")
ARCHETYPE_COLUMNS: tuple[str, ...] = ("stage", "segment_name", *LEVEL_COLUMNS, "strategy")
NAME_COLUMNS: tuple[str, ...] = ("cluster_id", "segment_name", "strategy", "archetype_distance")

_PROFILE_MEANS: dict[str, str] = {
    "recency_level": "mean_recency_days",
    "frequency_level": "mean_frequency",
    "monetary_level": "mean_monetary",
}


def load_archetypes(path_or_frame: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read and validate the segment archetypes.

    Parameters
    ----------
    path_or_frame : path of the seed CSV, or an already loaded frame (e.g. ``dbt.ref`` of the seed).

    Returns
    -------
    DataFrame with ``ARCHETYPE_COLUMNS`` (levels float64, text columns str), sorted by
    ``stage, segment_name``.

    Raises ``ValueError`` naming the source (file path, or '<DataFrame>') when a column is missing,
    a stage is unknown, a level is missing or outside [0, 1], a name or strategy is empty, or a
    segment name repeats within a stage.
    """
    if isinstance(path_or_frame, pd.DataFrame):
        source = "<DataFrame>"
        frame = path_or_frame.copy()
    else:
        source = str(path_or_frame)
        frame = pd.read_csv(path_or_frame)
    missing = [column for column in ARCHETYPE_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"archetypes {source}: missing columns {missing}")
    frame = frame.loc[:, list(ARCHETYPE_COLUMNS)]
    unknown_stages = sorted(set(frame["stage"].astype("str")) - set(STAGES))
    if unknown_stages:
        raise ValueError(f"archetypes {source}: unknown stage(s) {unknown_stages}; use {STAGES}")
    for column in ("segment_name", "strategy"):
        text = frame[column].astype("str").str.strip()
        if frame[column].isna().any() or (text == "").any():
            raise ValueError(f"archetypes {source}: empty values in column {column!r}")
        frame[column] = text
    for column in LEVEL_COLUMNS:
        levels = pd.to_numeric(frame[column], errors="coerce")
        outside = frame.loc[levels.isna() | (levels < 0) | (levels > 1), "segment_name"]
        if not outside.empty:
            raise ValueError(
                f"archetypes {source}: {column} must be a number in [0, 1]; "
                f"offending segments {sorted(outside)}"
            )
        frame[column] = levels.astype("float64")
    duplicated = frame.loc[frame.duplicated(["stage", "segment_name"]), ["stage", "segment_name"]]
    if not duplicated.empty:
        pairs = sorted(map(tuple, duplicated.to_numpy().tolist()))
        raise ValueError(f"archetypes {source}: duplicate segment names per stage {pairs}")
    frame = frame.astype({"stage": "str", "segment_name": "str", "strategy": "str"})
    return frame.sort_values(["stage", "segment_name"], kind="stable").reset_index(drop=True)


def cluster_levels(profiles: pd.DataFrame) -> pd.DataFrame:
    """Turn cluster profiles into R/F/M levels in [0, 1] (step 1 of the module's naming rule).

    Parameters
    ----------
    profiles : frame with ``cluster_id, mean_recency_days, mean_frequency, mean_monetary``.

    Returns
    -------
    DataFrame ``cluster_id, recency_level, frequency_level, monetary_level`` sorted by
    ``cluster_id``.
    """
    ordered = profiles.sort_values("cluster_id", kind="stable").reset_index(drop=True)
    k = len(ordered)
    levels = pd.DataFrame({"cluster_id": ordered["cluster_id"].astype("int64")})
    for level, mean in _PROFILE_MEANS.items():
        ranks = ordered[mean].rank(method="average")
        levels[level] = ((ranks - 1) / (k - 1)).astype("float64") if k > 1 else 0.5
    return levels


def name_clusters(profiles: pd.DataFrame, archetypes: pd.DataFrame, *, stage: str) -> pd.DataFrame:
    """Give every cluster a unique segment name by matching it to an archetype.

    Implements the rule in this module's docstring.

    Parameters
    ----------
    profiles : one row per cluster with ``cluster_id`` and the mean R/F/M columns.
    archetypes : validated archetypes (``load_archetypes``); only rows of ``stage`` are used.
    stage : 'pca' or 'tsne'.

    Returns
    -------
    DataFrame ``cluster_id, segment_name, strategy, archetype_distance`` sorted by ``cluster_id``;
    ``archetype_distance`` is the level distance to the archetype whose name (or base name) the
    cluster received.
    """
    candidates = (
        archetypes.loc[archetypes["stage"] == stage]
        .sort_values("segment_name", kind="stable")
        .reset_index(drop=True)
    )
    if candidates.empty:
        raise ValueError(f"no archetypes for stage {stage!r}")
    levels = cluster_levels(profiles)
    cluster_points = levels.loc[:, list(LEVEL_COLUMNS)].to_numpy()
    archetype_points = candidates.loc[:, list(LEVEL_COLUMNS)].to_numpy()
    cost = np.linalg.norm(cluster_points[:, None, :] - archetype_points[None, :, :], axis=2)
    rows, columns = linear_sum_assignment(cost)
    match = dict(zip(rows.tolist(), columns.tolist(), strict=True))
    names: list[str] = []
    strategies: list[str] = []
    distances: list[float] = []
    repeats: dict[str, int] = {}
    for row in range(len(levels)):
        if row in match:
            column = match[row]
            suffix = ""
        else:
            column = int(np.argmin(cost[row]))
            base = str(candidates.at[column, "segment_name"])
            repeats[base] = repeats.get(base, 1) + 1
            suffix = f" ({repeats[base]})"
        names.append(f"{candidates.at[column, 'segment_name']}{suffix}")
        strategies.append(str(candidates.at[column, "strategy"]))
        distances.append(float(cost[row, column]))
    if len(set(names)) != len(names):
        raise ValueError(f"segment names are not unique for stage {stage!r}: {names}")
    return pd.DataFrame(
        {
            "cluster_id": levels["cluster_id"],
            "segment_name": pd.Series(names, dtype="str"),
            "strategy": pd.Series(strategies, dtype="str"),
            "archetype_distance": pd.Series(distances, dtype="float64"),
        },
        columns=list(NAME_COLUMNS),
    )
