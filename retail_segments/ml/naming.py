"""Segment names from cluster profiles, matched to archetypes (``seeds/segment_archetypes.csv``).

Naming rule (``name_clusters``):

1. Levels (``cluster_levels``). Each cluster is described by three numbers in [0, 1] taken from
   its mean ``recency_days``, ``frequency`` (orders) and ``monetary`` (spend):

   - ``recency_level``: where the cluster's mean recency lies between the most recent cluster
     (0) and the longest-gone cluster (1), linearly in days, so a cluster gone for months sits
     far from the recent ones, however many clusters lie between them;
   - ``frequency_level`` and ``monetary_level``: the same on ``log(1 + mean)`` (a mean below 0
     counts as 0), since orders and spend are skewed: one order against two (a newcomer against
     a repeat buyer) then weighs about as much as 3.5 against 7.

   A measure on which all clusters are equal (or a single cluster) gives 0.5.
2. Cost. The cost of giving cluster ``i`` the name of archetype ``j`` is the Euclidean distance
   between the cluster's three levels and the archetype's three levels.
3. Assignment. ``scipy.optimize.linear_sum_assignment`` finds the one-to-one matching of clusters
   to archetypes with the minimal total cost, so no two clusters share a name. With fewer
   clusters than archetypes the best-fitting subset of the archetypes is used.
4. Extra clusters (more clusters than archetypes). Every archetype holds one cluster after step
   3; each remaining cluster, in ascending ``cluster_id`` order, takes the name of its nearest
   archetype ``A`` with a qualifier saying how it differs from the cluster that holds ``A``'s
   plain name: the measure on which their levels differ most, in the direction of the difference
   (``QUALIFIERS``): recency "more recent" / "longer gone"; frequency "more orders" / "fewer
   orders", or "one order" when the extra cluster's mean orders is below ``ONE_ORDER_BELOW``
   (1.5, it rounds to one order) and the holder's is not; monetary "higher spend" / "lower
   spend". Example: ``sleeping, longer gone``. When that name is taken, the measure with the next
   largest difference; then two qualifiers (``sleeping, longer gone, higher spend``), then all
   three; then the next nearest archetype. The strategy is the archetype's plus the
   qualifier's advice, the meaning the archetype's plus what sets the cluster apart. Names are
   never numbered. Each extra cluster has up to 7 qualified names per archetype, so every one is
   taken only for a cluster equal to the holders in every measure, or with 25 or more clusters
   for the three PCA archetypes; that raises ``ValueError`` (lower ``n_clusters``).

Rows (clusters) enter the cost matrix in ``cluster_id`` order and columns (archetypes) in
``segment_name`` order, and ties between qualifiers go to recency, then frequency, then monetary,
so the result is deterministic; since cluster ids come from a label-independent ordering rule,
names do not depend on the raw labels an algorithm emitted.

Names that follow the customers across retrains (``inherit_names``): levels are positions among
the clusters of one fit, so when a retrain moves a cluster's mean a little, two neighbouring
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
d. ``name_clusters(..., inherited=...)`` keeps those names when their base name is still an
   archetype of the stage and their qualifiers are in ``QUALIFIERS`` (a qualified name such as
   ``sleeping, longer gone`` is inherited whole, with its strategy; an old numbered name such as
   ``sleeping (2)`` is not inherited), and names the other clusters by steps 1-4 above among the
   names still free; ``name_source`` says which rule named each cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from retail_segments.ml.settings import DEFAULT_MIN_OVERLAP

STAGES: tuple[str, ...] = ("pca", "tsne")
LEVEL_COLUMNS: tuple[str, ...] = ("recency_level", "frequency_level", "monetary_level")
ARCHETYPE_COLUMNS: tuple[str, ...] = (
    "stage",
    "segment_name",
    *LEVEL_COLUMNS,
    "meaning",
    "strategy",
)
NAME_COLUMNS: tuple[str, ...] = (
    "cluster_id",
    "segment_name",
    "meaning",
    "strategy",
    "archetype_distance",
    "name_source",
)
# A cluster whose mean orders is below this rounds to one order ("one order" qualifier).
ONE_ORDER_BELOW = 1.5
QUALIFIER_SEPARATOR = ", "

_PROFILE_MEANS: dict[str, str] = {
    "recency_level": "mean_recency_days",
    "frequency_level": "mean_frequency",
    "monetary_level": "mean_monetary",
}
_LOG_SCALED: frozenset[str] = frozenset({"frequency_level", "monetary_level"})


class Qualifier(NamedTuple):
    """What an extra cluster's name says about it, against the cluster holding the plain name."""

    difference: str  # completes "Unlike the '<base>' segment, they ..."
    advice: str  # appended to the archetype's strategy


QUALIFIERS: Mapping[str, Qualifier] = {
    "more recent": Qualifier(
        "bought more recently", "Contact them first, while their last order is still fresh."
    ),
    "longer gone": Qualifier("have been gone longer", "Keep what you spend on them low."),
    "more orders": Qualifier("order more often", "They are worth a more personal touch."),
    "fewer orders": Qualifier("order less often", "Give them a reason to come back sooner."),
    "one order": Qualifier("bought only once", "Aim for a second order before anything else."),
    "higher spend": Qualifier("spend more", "Give them priority and a richer offer."),
    "lower spend": Qualifier("spend less", "Use cheaper channels and smaller offers."),
}
# level column -> (qualifier when the extra cluster's level is lower, when it is higher)
_DIRECTIONS: dict[str, tuple[str, str]] = {
    "recency_level": ("more recent", "longer gone"),
    "frequency_level": ("fewer orders", "more orders"),
    "monetary_level": ("lower spend", "higher spend"),
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
    a stage is unknown, a level is missing or outside [0, 1], a name, meaning or strategy is
    empty, a name contains ',' (it separates an extra cluster's qualifiers), or a segment name
    repeats within a stage.
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
    for column in ("segment_name", "meaning", "strategy"):
        text = frame[column].astype("str").str.strip()
        if frame[column].isna().any() or (text == "").any():
            raise ValueError(f"archetypes {source}: empty values in column {column!r}")
        frame[column] = text
    with_comma = frame.loc[frame["segment_name"].str.contains(",", regex=False), "segment_name"]
    if not with_comma.empty:
        raise ValueError(
            f"archetypes {source}: segment names must not contain ',' (it separates the "
            f"qualifier of an extra cluster's name); offending names {sorted(with_comma)}"
        )
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
    frame = frame.astype(
        {"stage": "str", "segment_name": "str", "meaning": "str", "strategy": "str"}
    )
    return frame.sort_values(["stage", "segment_name"], kind="stable").reset_index(drop=True)


def cluster_levels(profiles: pd.DataFrame) -> pd.DataFrame:
    """Turn cluster profiles into R/F/M levels in [0, 1] (step 1 of the module's naming rule).

    Parameters
    ----------
    profiles : frame with ``cluster_id, mean_recency_days, mean_frequency, mean_monetary``.

    Returns
    -------
    DataFrame ``cluster_id, recency_level, frequency_level, monetary_level`` sorted by
    ``cluster_id``: recency min-max scaled in days, frequency and monetary min-max scaled on
    ``log(1 + max(mean, 0))``; 0.5 where all clusters are equal.
    """
    ordered = profiles.sort_values("cluster_id", kind="stable").reset_index(drop=True)
    levels = pd.DataFrame({"cluster_id": ordered["cluster_id"].astype("int64")})
    for level, mean in _PROFILE_MEANS.items():
        values = ordered[mean].to_numpy(dtype="float64")
        if level in _LOG_SCALED:
            values = np.log1p(np.clip(values, 0.0, None))
        low, high = (values.min(), values.max()) if len(values) else (0.0, 0.0)
        levels[level] = (values - low) / (high - low) if high > low else 0.5
        levels[level] = levels[level].astype("float64")
    return levels


def split_name(segment_name: str) -> tuple[str, tuple[str, ...]]:
    """Split a segment name into its archetype name and its qualifiers.

    ``'sleeping, longer gone, higher spend'`` -> ``('sleeping', ('longer gone', 'higher spend'))``;
    ``'at risk'`` -> ``('at risk', ())``.
    """
    base, *qualifiers = segment_name.split(QUALIFIER_SEPARATOR)
    return base, tuple(qualifiers)


def base_name(segment_name: str) -> str:
    """The archetype name a segment name is built on.

    ``'sleeping, longer gone'`` -> ``'sleeping'``; ``'sleeping'`` -> ``'sleeping'``.
    """
    return split_name(segment_name)[0]


def qualified_name(base: str, qualifiers: tuple[str, ...]) -> str:
    """``base`` followed by its qualifiers, e.g. ``('at risk', ('one order',))`` ->
    ``'at risk, one order'``. Raises ``ValueError`` for a qualifier outside ``QUALIFIERS``."""
    unknown = [qualifier for qualifier in qualifiers if qualifier not in QUALIFIERS]
    if unknown:
        raise ValueError(f"unknown qualifier(s) {unknown}; known: {sorted(QUALIFIERS)}")
    return QUALIFIER_SEPARATOR.join((base, *qualifiers))


def describe_name(
    base: str, qualifiers: tuple[str, ...], meaning: str, strategy: str
) -> tuple[str, str]:
    """Meaning and strategy of a (possibly qualified) segment name.

    Parameters
    ----------
    base : the archetype's name.
    qualifiers : the name's qualifiers (keys of ``QUALIFIERS``), possibly empty.
    meaning, strategy : the archetype's meaning and strategy from the seed.

    Returns
    -------
    ``(meaning, strategy)``: the archetype's own when there are no qualifiers; otherwise the
    meaning followed by "Unlike the '<base>' segment, they ..." and the strategy followed by
    each qualifier's advice.
    """
    if not qualifiers:
        return meaning, strategy
    differences = " and ".join(QUALIFIERS[qualifier].difference for qualifier in qualifiers)
    advice = " ".join(QUALIFIERS[qualifier].advice for qualifier in qualifiers)
    return (
        f"{meaning} Unlike the '{base}' segment, they {differences}.",
        f"{strategy} {advice}",
    )


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


def _qualifier_options(extra: pd.Series, holder: pd.Series) -> list[tuple[str, ...]]:
    """Qualifier tuples for an extra cluster against the holder of its archetype's plain name,
    best first (step 4): single measures by descending level difference, then pairs by
    descending summed difference, then all three. Measures with no difference are left out."""
    measures = []
    for position, (level, (lower, higher)) in enumerate(_DIRECTIONS.items()):
        difference = float(extra[level] - holder[level])
        if difference == 0:
            continue
        word = higher if difference > 0 else lower
        if (
            word == "fewer orders"
            and extra["mean_frequency"] < ONE_ORDER_BELOW <= holder["mean_frequency"]
        ):
            word = "one order"
        measures.append((abs(difference), position, word))
    measures.sort(key=lambda item: (-item[0], item[1]))
    options: list[tuple[str, ...]] = []
    for size in range(1, len(measures) + 1):
        groups = combinations(measures, size)  # keeps the best-first order inside each group
        ranked = sorted(groups, key=lambda group: -sum(item[0] for item in group))
        options.extend(tuple(item[2] for item in group) for group in ranked)
    return options


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
        no longer an archetype of the stage (the seed changed) or that carries an unknown
        qualifier (such as an old ``' (2)'`` suffix) is not inherited.

    Returns
    -------
    DataFrame ``cluster_id, segment_name, meaning, strategy, archetype_distance, name_source``
    sorted by ``cluster_id``; ``archetype_distance`` is the level distance to the archetype whose
    name (or base name) the cluster received, ``name_source`` is 'previous_model' or 'archetype'.
    Raises ``ValueError`` when the stage has no archetypes, the inherited names repeat, or (with
    far more clusters than archetypes) no unique name is left.
    """
    candidates = (
        archetypes.loc[archetypes["stage"] == stage]
        .sort_values("segment_name", kind="stable")
        .reset_index(drop=True)
    )
    if candidates.empty:
        raise ValueError(f"no archetypes for stage {stage!r}")
    levels = cluster_levels(profiles)
    means = (
        profiles.sort_values("cluster_id", kind="stable")
        .reset_index(drop=True)
        .loc[:, list(_PROFILE_MEANS.values())]
    )
    clusters = pd.concat([levels, means], axis=1)
    cluster_points = levels.loc[:, list(LEVEL_COLUMNS)].to_numpy()
    archetype_points = candidates.loc[:, list(LEVEL_COLUMNS)].to_numpy()
    cost = np.linalg.norm(cluster_points[:, None, :] - archetype_points[None, :, :], axis=2)
    position = {name: column for column, name in enumerate(candidates["segment_name"])}

    # cluster row -> (archetype column, name, source)
    named: dict[int, tuple[int, str, str]] = {}
    row_of = {int(cluster): row for row, cluster in enumerate(levels["cluster_id"])}
    for cluster, name in sorted((inherited or {}).items()):
        base, qualifiers = split_name(name)
        known = base in position and all(qualifier in QUALIFIERS for qualifier in qualifiers)
        if cluster in row_of and known:
            named[row_of[cluster]] = (position[base], name, "previous_model")
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
    holder_of = {name: row for row, (_, name, _) in named.items()}
    for row in open_rows:
        if row in named:
            continue
        named[row] = _qualified_extra(row, clusters, cost[row], candidates, holder_of, used)
        used.add(named[row][1])

    ordered = [named[row] for row in range(len(levels))]
    names = [name for _, name, _ in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"segment names are not unique for stage {stage!r}: {names}")
    texts = [
        describe_name(
            *split_name(name),
            str(candidates.at[column, "meaning"]),
            str(candidates.at[column, "strategy"]),
        )
        for column, name, _ in ordered
    ]
    return pd.DataFrame(
        {
            "cluster_id": levels["cluster_id"],
            "segment_name": pd.Series(names, dtype="str"),
            "meaning": pd.Series([meaning for meaning, _ in texts], dtype="str"),
            "strategy": pd.Series([strategy for _, strategy in texts], dtype="str"),
            "archetype_distance": pd.Series(
                [float(cost[row, column]) for row, (column, _, _) in enumerate(ordered)],
                dtype="float64",
            ),
            "name_source": pd.Series([source for _, _, source in ordered], dtype="str"),
        },
        columns=list(NAME_COLUMNS),
    )


def _qualified_extra(
    row: int,
    clusters: pd.DataFrame,
    costs: np.ndarray,
    candidates: pd.DataFrame,
    holder_of: Mapping[str, int],
    used: set[str],
) -> tuple[int, str, str]:
    """Step 4 of the module docstring for one extra cluster: ``(archetype column, name,
    'archetype')`` with the first free qualified name, nearest archetype first."""
    for archetype in np.argsort(costs, kind="stable").tolist():
        base = str(candidates.at[archetype, "segment_name"])
        if base not in holder_of:
            if base not in used:  # only when inherited names left an archetype unassigned
                return archetype, base, "archetype"
            continue
        # one row each (the index is unique): a Series
        holder = cast(pd.Series, clusters.loc[holder_of[base]])
        cluster = cast(pd.Series, clusters.loc[row])
        for qualifiers in _qualifier_options(cluster, holder):
            name = qualified_name(base, qualifiers)
            if name not in used:
                return archetype, name, "archetype"
    raise ValueError(
        f"cannot give cluster {clusters.at[row, 'cluster_id']!s} a unique segment name: all "
        f"{len(candidates)} archetypes and their qualified names are taken; lower n_clusters or "
        "add archetypes to seeds/segment_archetypes.csv"
    )
