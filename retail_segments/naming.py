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

Names that follow the customers across retrains (``inherit_names``): archetype levels are ranks
among the clusters of one fit, so when a retrain moves a cluster's mean a little, two neighbouring
clusters can swap names although they hold the same customers. When a previous model exists (the
registry's segment classifier of an earlier data window), the new fit's clusters are first named
after it:

a. Cross-tabulate the new cluster ids against the segment the previous classifier predicts for
   the same customers (noise customers, cluster id -1, are left out).
b. ``linear_sum_assignment`` on the negated counts pairs each cluster with at most one previous
   segment so that the most customers keep their name.
c. A pair is kept only when the previous segment holds at least ``min_overlap`` (default 0.5) of
   the cluster's customers, so a cluster that is mostly new customers or a merge of several old
   segments is not forced into an old name.
d. ``name_clusters(..., inherited=...)`` keeps those names (when their base name is still an
   archetype of the stage) and names the other clusters by steps 1-3 above among the archetypes
   whose names are still free; ``name_source`` says which rule named each cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

STAGES: tuple[str, ...] = ("pca", "tsne")
LEVEL_COLUMNS: tuple[str, ...] = ("recency_level", "frequency_level", "monetary_level")
ARCHETYPE_COLUMNS: tuple[str, ...] = ("stage", "segment_name", *LEVEL_COLUMNS, "strategy")
NAME_COLUMNS: tuple[str, ...] = (
    "cluster_id",
    "segment_name",
    "strategy",
    "archetype_distance",
    "name_source",
)
NAME_SOURCES: tuple[str, ...] = ("archetype", "previous_model")
DEFAULT_MIN_OVERLAP = 0.5
_SUFFIX = re.compile(r" \((\d+)\)$")

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


def base_name(segment_name: str) -> str:
    """The archetype name a segment name is built on: ``'sleeping (2)'`` -> ``'sleeping'``."""
    return _SUFFIX.sub("", segment_name)


def inherit_names(
    cluster_ids: np.ndarray,
    previous_names: np.ndarray,
    *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> dict[int, str]:
    """Name clusters after the previous model's segments of their customers (steps a-c of the
    module docstring).

    Parameters
    ----------
    cluster_ids : the new fit's cluster id of each customer (-1 = DBSCAN noise, ignored).
    previous_names : the segment the previous classifier predicts for the same customers, same
        order and length.
    min_overlap : smallest share of a cluster's customers the previous segment must hold for the
        cluster to inherit its name, in (0, 1].

    Returns
    -------
    ``{cluster_id: inherited segment name}`` for the clusters that inherit; the others are
    absent. Names are unique. Pairs are found by ``linear_sum_assignment`` over clusters in id
    order and previous names in sorted order, so the result is deterministic.
    """
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap!r}")
    ids = np.asarray(cluster_ids)
    names = np.asarray(previous_names, dtype="str")
    if ids.shape != names.shape:
        raise ValueError(
            f"cluster_ids and previous_names differ in length: {ids.shape} vs {names.shape}"
        )
    clustered = ids != -1
    if not clustered.any():
        return {}
    counts = pd.crosstab(ids[clustered], names[clustered]).sort_index().sort_index(axis=1)
    table = counts.to_numpy()
    rows, columns = linear_sum_assignment(-table)
    sizes = table.sum(axis=1)
    return {
        int(counts.index[row]): str(counts.columns[column])
        for row, column in zip(rows.tolist(), columns.tolist(), strict=True)
        if table[row, column] > 0 and table[row, column] >= min_overlap * sizes[row]
    }


def _free_name(base: str, used: set[str]) -> str:
    if base not in used:
        return base
    number = 2
    while f"{base} ({number})" in used:
        number += 1
    return f"{base} ({number})"


def name_clusters(
    profiles: pd.DataFrame,
    archetypes: pd.DataFrame,
    *,
    stage: str,
    inherited: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """Give every cluster a unique segment name: inherited from the previous model where
    ``inherited`` says so, otherwise by matching it to an archetype.

    Implements the rules in this module's docstring.

    Parameters
    ----------
    profiles : one row per cluster with ``cluster_id`` and the mean R/F/M columns.
    archetypes : validated archetypes (``load_archetypes``); only rows of ``stage`` are used.
    stage : 'pca' or 'tsne'.
    inherited : optional ``{cluster_id: name}`` from ``inherit_names``. A name whose base name is
        no longer an archetype of the stage (the seed changed) is not inherited.

    Returns
    -------
    DataFrame ``cluster_id, segment_name, strategy, archetype_distance, name_source`` sorted by
    ``cluster_id``; ``archetype_distance`` is the level distance to the archetype whose name (or
    base name) the cluster received, ``name_source`` is 'previous_model' or 'archetype'.
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
    position = {name: column for column, name in enumerate(candidates["segment_name"])}

    # cluster row -> (archetype column, name, source)
    named: dict[int, tuple[int, str, str]] = {}
    row_of = {int(cluster): row for row, cluster in enumerate(levels["cluster_id"])}
    for cluster, name in sorted((inherited or {}).items()):
        if cluster in row_of and base_name(name) in position:
            named[row_of[cluster]] = (position[base_name(name)], name, "previous_model")
    used = {name for _, name, _ in named.values()}
    if len(used) != len(named):
        raise ValueError(f"inherited segment names are not unique: {inherited}")

    open_rows = [row for row in range(len(levels)) if row not in named]
    free_columns = [
        column for column, name in enumerate(candidates["segment_name"]) if name not in used
    ]
    if open_rows and free_columns:
        sub_cost = cost[np.ix_(open_rows, free_columns)]
        rows, columns = linear_sum_assignment(sub_cost)
        for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
            archetype = free_columns[column]
            name = str(candidates.at[archetype, "segment_name"])
            named[open_rows[row]] = (archetype, name, "archetype")
            used.add(name)
    for row in open_rows:
        if row not in named:
            archetype = int(np.argmin(cost[row]))
            name = _free_name(str(candidates.at[archetype, "segment_name"]), used)
            named[row] = (archetype, name, "archetype")
            used.add(name)

    ordered = [named[row] for row in range(len(levels))]
    names = [name for _, name, _ in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"segment names are not unique for stage {stage!r}: {names}")
    return pd.DataFrame(
        {
            "cluster_id": levels["cluster_id"],
            "segment_name": pd.Series(names, dtype="str"),
            "strategy": pd.Series(
                [str(candidates.at[column, "strategy"]) for column, _, _ in ordered], dtype="str"
            ),
            "archetype_distance": pd.Series(
                [float(cost[row, column]) for row, (column, _, _) in enumerate(ordered)],
                dtype="float64",
            ),
            "name_source": pd.Series([source for _, _, source in ordered], dtype="str"),
        },
        columns=list(NAME_COLUMNS),
    )
