"""Candidate clusterings of an embedding, model selection, stable cluster ids and profiles.

The flow for one stage (PCA or t-SNE) is::

    scores, labels = evaluate_candidates(X, stage=..., k_values=...)
    scores = select_candidate(scores, algorithm=None, n_clusters=None)
    cluster_ids = order_clusters(labels[selected_key], rfm)
    profiles = profile_clusters(rfm, cluster_ids, stage=...)

Noise points of DBSCAN carry the label ``NOISE_LABEL`` (-1, scikit-learn's convention) throughout;
they are not clustered, not profiled, and later get a segment from the classifier.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from joblib import Memory
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestCentroid, NearestNeighbors

ALGORITHMS: tuple[str, ...] = ("kmeans", "gaussian_mixture", "agglomerative", "dbscan")
NOISE_LABEL = -1
# Up to this many points, evaluate_candidates computes the silhouette exactly, from one distance
# matrix shared by all candidates (n^2 float64: 200 MB at 5,000 points). Beyond it the silhouette,
# quadratic in time, is estimated on a seeded random sample of this many points.
EXACT_SILHOUETTE_MAX_SAMPLES = 10_000

SELECTION_COLUMNS: tuple[str, ...] = (
    "stage",
    "algorithm",
    "n_clusters",
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "is_selected",
    "selection_reason",
)

PROFILE_COLUMNS: tuple[str, ...] = (
    "stage",
    "cluster_id",
    "n_customers",
    "mean_recency_days",
    "median_recency_days",
    "mean_frequency",
    "median_frequency",
    "mean_monetary",
    "median_monetary",
    "revenue_share",
)


def dbscan_eps(X: np.ndarray, min_samples: int, core_fraction: float) -> float:
    """Choose DBSCAN's ``eps`` from the k-nearest-neighbour distances of ``X``.

    For every point take the distance to its ``min_samples``-th nearest neighbour, counting the
    point itself (exactly DBSCAN's core-point criterion); ``eps`` is the ``core_fraction`` quantile
    of these distances (linear interpolation). Hence a fraction ``core_fraction`` of the points are
    core points. Deterministic for a given ``X``. Returns a float > 0.
    """
    neighbours = NearestNeighbors(n_neighbors=min_samples).fit(X)
    distances, _ = neighbours.kneighbors(X)
    eps = float(np.quantile(distances[:, -1], core_fraction))
    return max(eps, np.finfo("float64").eps)


def fit_labels(
    X: np.ndarray,
    algorithm: str,
    n_clusters: int | None,
    *,
    random_state: int = 42,
    n_init: int = 10,
    dbscan_min_samples: int = 4,
    dbscan_core_fraction: float = 0.9,
    memory: Memory | None = None,
) -> np.ndarray:
    """Cluster the rows of ``X`` with one algorithm and return raw integer labels.

    Parameters
    ----------
    X : float array ``(n_samples, n_dims)``, the embedding.
    algorithm : one of ``ALGORITHMS``.
    n_clusters : number of clusters; ignored (pass ``None``) for ``dbscan``, which finds its own.
    random_state : seed of KMeans and GaussianMixture.
    n_init : KMeans restarts.
    dbscan_min_samples, dbscan_core_fraction : see ``dbscan_eps``.
    memory : optional joblib cache for the agglomerative (ward) tree. The full tree is always
        built and then cut at ``n_clusters``, so with a cache the tree of ``X`` is built once for
        every k; the labels are the same with or without it.

    Returns
    -------
    int64 array ``(n_samples,)`` of labels as emitted by the algorithm (DBSCAN noise = -1).
    """
    if algorithm == "kmeans":
        model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
        labels = model.fit_predict(X)
    elif algorithm == "gaussian_mixture":
        model = GaussianMixture(n_components=n_clusters, random_state=random_state)
        labels = model.fit(X).predict(X)
    elif algorithm == "agglomerative":
        model = AgglomerativeClustering(
            n_clusters=n_clusters, linkage="ward", memory=memory, compute_full_tree=True
        )
        labels = model.fit_predict(X)
    elif algorithm == "dbscan":
        eps = dbscan_eps(X, dbscan_min_samples, dbscan_core_fraction)
        labels = DBSCAN(eps=eps, min_samples=dbscan_min_samples).fit_predict(X)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    return np.asarray(labels, dtype="int64")


def score_labels(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    distances: np.ndarray | None = None,
    silhouette_sample_size: int | None = None,
    random_state: int = 42,
) -> tuple[float, float, float]:
    """Return ``(silhouette, calinski_harabasz, davies_bouldin)`` of a labelling.

    Points labelled ``NOISE_LABEL`` (DBSCAN noise) are left out, so DBSCAN is scored on its
    non-noise points only. If fewer than two clusters remain (or every point is its own cluster)
    the scores are undefined and all three are NaN.

    ``distances``, the Euclidean distance matrix of ``X`` (``sklearn.metrics.pairwise_distances
    (X)``), when given, is used for the silhouette instead of recomputing it; the score is the
    same. Otherwise, with ``silhouette_sample_size``, the silhouette is estimated on that many
    scored points drawn with ``random_state`` (scikit-learn's ``sample_size``) when there are more.
    Calinski-Harabasz and Davies-Bouldin are always computed on every scored point.
    """
    keep = labels != NOISE_LABEL
    kept_labels = labels[keep]
    n_found = np.unique(kept_labels).size
    if n_found < 2 or n_found >= kept_labels.size:
        return (np.nan, np.nan, np.nan)
    kept = X[keep]
    if distances is not None:
        kept_distances = distances if keep.all() else distances[np.ix_(keep, keep)]
        silhouette = silhouette_score(kept_distances, kept_labels, metric="precomputed")
    else:
        sample_size = silhouette_sample_size
        if sample_size is not None and sample_size >= kept_labels.size:
            sample_size = None
        silhouette = silhouette_score(
            kept, kept_labels, sample_size=sample_size, random_state=random_state
        )
    return (
        float(silhouette),
        float(calinski_harabasz_score(kept, kept_labels)),
        float(davies_bouldin_score(kept, kept_labels)),
    )


def evaluate_candidates(
    X: np.ndarray,
    *,
    stage: str,
    k_values: Mapping[str, Sequence[int]],
    include_dbscan: bool = True,
    random_state: int = 42,
    n_init: int = 10,
    dbscan_min_samples: int = 4,
    dbscan_core_fraction: float = 0.9,
) -> tuple[pd.DataFrame, dict[tuple[str, int], np.ndarray]]:
    """Fit and score every candidate clustering of ``X``.

    Parameters
    ----------
    X : the embedding, float array ``(n_samples, n_dims)``.
    stage : value written to the ``stage`` column ('pca' or 'tsne').
    k_values : for each k-based algorithm (``kmeans``, ``gaussian_mixture``, ``agglomerative``) the
        numbers of clusters to try; algorithms absent from the mapping are skipped.
    include_dbscan : also run DBSCAN once; its ``n_clusters`` is the number of clusters it finds.
    random_state, n_init, dbscan_min_samples, dbscan_core_fraction : see ``fit_labels``.

    Returns
    -------
    scores : DataFrame with columns ``stage, algorithm, n_clusters, silhouette,
        calinski_harabasz, davies_bouldin``, rows ordered by ``ALGORITHMS`` then ``n_clusters``.
    labels : ``{(algorithm, n_clusters): raw labels}`` for every row of ``scores``.

    The work is shared between candidates: the ward tree is built once (cached in a temporary
    directory) and cut at every k, and when ``X`` has at most ``EXACT_SILHOUETTE_MAX_SAMPLES``
    rows the silhouettes reuse one distance matrix. Both are exact: the scores and labels are
    those of fitting and scoring each candidate on its own. With more rows each silhouette is
    estimated on ``EXACT_SILHOUETTE_MAX_SAMPLES`` points drawn with ``random_state`` (see
    ``score_labels``), so scoring stays linear in the rows.
    """
    unknown = sorted(set(k_values) - set(ALGORITHMS[:3]))
    if unknown:
        raise ValueError(f"k_values has keys that are not k-based algorithms: {unknown}")
    options: dict[str, Any] = {
        "random_state": random_state,
        "n_init": n_init,
        "dbscan_min_samples": dbscan_min_samples,
        "dbscan_core_fraction": dbscan_core_fraction,
    }
    runs: list[tuple[str, int | None]] = [
        (algorithm, int(k))
        for algorithm in ALGORITHMS[:3]
        for k in sorted(set(k_values.get(algorithm, ())))
    ]
    if include_dbscan:
        runs.append(("dbscan", None))
    exact = len(X) <= EXACT_SILHOUETTE_MAX_SAMPLES
    scoring: dict[str, Any] = {
        "distances": pairwise_distances(X) if exact else None,
        "silhouette_sample_size": None if exact else EXACT_SILHOUETTE_MAX_SAMPLES,
        "random_state": random_state,
    }
    rows = []
    labels_by_key: dict[tuple[str, int], np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="ward-tree-") as cache:
        memory = Memory(cache, verbose=0)
        for algorithm, k in runs:
            labels = fit_labels(X, algorithm, k, memory=memory, **options)
            found = int(np.unique(labels[labels != NOISE_LABEL]).size) if k is None else k
            labels_by_key[(algorithm, found)] = labels
            rows.append((stage, algorithm, found, *score_labels(X, labels, **scoring)))
    scores = pd.DataFrame(rows, columns=list(SELECTION_COLUMNS[:6]))
    scores["n_clusters"] = scores["n_clusters"].astype("int64")
    return scores, labels_by_key


def select_candidate(
    scores: pd.DataFrame,
    algorithm: str | None = None,
    n_clusters: int | None = None,
    *,
    k_bounds: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Mark exactly one candidate as selected and say why for every row.

    Rule: among the rows allowed by the pins (``algorithm`` and/or ``n_clusters``; ``None`` = not
    pinned) that have a silhouette, take the highest silhouette; ties go to the earlier row in
    ``ALGORITHMS`` order, then to the smaller ``n_clusters``. Unless ``n_clusters`` is pinned,
    rows whose ``n_clusters`` lies outside ``k_bounds`` are not allowed either: this keeps a DBSCAN
    run that fragments into dozens of clusters from being selected. Raises ``ValueError`` if no
    allowed row has a silhouette (e.g. a pinned DBSCAN that found fewer than two clusters).

    Parameters
    ----------
    scores : the ``scores`` frame of ``evaluate_candidates``.
    algorithm, n_clusters : optional pins from the stage config.
    k_bounds : inclusive ``(min, max)`` number of clusters a selectable candidate may have.

    Returns
    -------
    Copy of ``scores`` sorted by algorithm order and ``n_clusters``, with ``is_selected`` (bool)
    and ``selection_reason`` (text) appended, columns in ``SELECTION_COLUMNS`` order.
    """
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ValueError(f"unknown pinned algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    order = {name: position for position, name in enumerate(ALGORITHMS)}
    table = (
        scores.assign(_order=scores["algorithm"].map(order))
        .sort_values(["_order", "n_clusters"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    allowed = pd.Series(True, index=table.index)
    if algorithm is not None:
        allowed &= table["algorithm"] == algorithm
    if n_clusters is not None:
        allowed &= table["n_clusters"] == n_clusters
    in_bounds = pd.Series(True, index=table.index)
    if k_bounds is not None and n_clusters is None:
        in_bounds = table["n_clusters"].between(*k_bounds)
    scored = table["silhouette"].notna()
    eligible = table.loc[allowed & in_bounds & scored, "silhouette"]
    if eligible.empty:
        raise ValueError(
            f"no scorable clustering candidate for algorithm={algorithm!r}, "
            f"n_clusters={n_clusters!r}, k_bounds={k_bounds!r} "
            f"in stage {sorted(table['stage'].unique())}"
        )
    chosen = eligible.idxmax()
    if algorithm is not None and n_clusters is not None:
        chosen_reason = "pinned by config"
    elif algorithm is not None:
        chosen_reason = "algorithm pinned by config; highest silhouette among its candidates"
    elif n_clusters is not None:
        chosen_reason = "n_clusters pinned by config; highest silhouette at that k"
    else:
        chosen_reason = "highest silhouette"
    reasons = np.select(
        [~scored, ~allowed, ~in_bounds],
        [
            "not scored: fewer than 2 clusters",
            "excluded by pinned config",
            "n_clusters outside the configured k range",
        ],
        default="lower silhouette than selected",
    ).astype(object)
    reasons[table.index == chosen] = chosen_reason
    table["is_selected"] = table.index == chosen
    table["selection_reason"] = pd.Series(reasons, index=table.index, dtype="str")
    return table.loc[:, list(SELECTION_COLUMNS)]


def selected_key(selection: pd.DataFrame) -> tuple[str, int]:
    """Return ``(algorithm, n_clusters)`` of the row with ``is_selected`` in a selection table."""
    row = selection.loc[selection["is_selected"]].iloc[0]
    return str(row["algorithm"]), int(row["n_clusters"])


def assign_clusters(
    X: np.ndarray,
    labels: np.ndarray,
    X_new: np.ndarray,
    algorithm: str,
    n_clusters: int,
    *,
    random_state: int = 42,
    n_init: int = 10,
    dbscan_min_samples: int = 4,
    dbscan_core_fraction: float = 0.9,
) -> np.ndarray:
    """Give new points the raw label the clustering of ``X`` implies for them.

    Parameters
    ----------
    X, labels : the points a candidate was fitted on and its raw labels (``fit_labels``).
    X_new : float array ``(n_new, n_dims)`` in the same space as ``X``.
    algorithm, n_clusters : the candidate (``selected_key``).
    random_state, n_init, dbscan_min_samples, dbscan_core_fraction : as given to ``fit_labels``.

    Returns
    -------
    int64 array ``(n_new,)`` of raw labels in the label space of ``labels``:

    - ``kmeans`` and ``gaussian_mixture``: the model is refitted on ``X`` with the same parameters
      (deterministic, so it is the model that produced ``labels``) and ``predict`` assigns;
    - ``agglomerative`` (no ``predict``): the nearest cluster centroid (mean of its points);
    - ``dbscan``: DBSCAN's own rule for a border point: the label of the nearest core point if it
      lies within ``eps``, else noise (``NOISE_LABEL``).
    """
    labels = np.asarray(labels, dtype="int64")
    if algorithm == "kmeans":
        model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state).fit(X)
        assigned = model.predict(X_new)
    elif algorithm == "gaussian_mixture":
        model = GaussianMixture(n_components=n_clusters, random_state=random_state).fit(X)
        assigned = model.predict(X_new)
    elif algorithm == "agglomerative":
        assigned = NearestCentroid().fit(X, labels).predict(X_new)
    elif algorithm == "dbscan":
        eps = dbscan_eps(X, dbscan_min_samples, dbscan_core_fraction)
        core = DBSCAN(eps=eps, min_samples=dbscan_min_samples).fit(X).core_sample_indices_
        distance, nearest = NearestNeighbors(n_neighbors=1).fit(X[core]).kneighbors(X_new)
        assigned = np.where(distance[:, 0] <= eps, labels[core][nearest[:, 0]], NOISE_LABEL)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    return np.asarray(assigned, dtype="int64")


def order_clusters(labels: np.ndarray, rfm: pd.DataFrame) -> np.ndarray:
    """Replace raw cluster labels by stable cluster ids ``0 .. k-1``.

    Ordering rule: clusters are sorted by descending mean ``monetary``; ties by ascending mean
    ``recency_days``, then descending mean ``frequency``, then ascending smallest ``customer_id``
    in the cluster (which cannot tie). Cluster 0 is therefore the highest-spending cluster. The
    result depends only on which customers share a cluster, never on the label values the
    algorithm emitted. ``NOISE_LABEL`` stays ``NOISE_LABEL``.

    Parameters
    ----------
    labels : raw labels, aligned with the rows of ``rfm``.
    rfm : frame with ``customer_id, recency_days, frequency, monetary``.

    Returns
    -------
    int64 array of cluster ids aligned with the rows of ``rfm``.
    """
    labels = np.asarray(labels, dtype="int64")
    frame = rfm.loc[:, ["customer_id", "recency_days", "frequency", "monetary"]].assign(
        label=labels
    )
    frame = frame.loc[frame["label"] != NOISE_LABEL]
    stats = frame.groupby("label").agg(
        monetary=("monetary", "mean"),
        recency=("recency_days", "mean"),
        frequency=("frequency", "mean"),
        first_customer=("customer_id", "min"),
    )
    ranked = stats.sort_values(
        ["monetary", "recency", "frequency", "first_customer"],
        ascending=[False, True, False, True],
        kind="stable",
    )
    mapping = {int(label): cluster_id for cluster_id, label in enumerate(ranked.index)}
    mapping[NOISE_LABEL] = NOISE_LABEL
    return np.array([mapping[int(label)] for label in labels], dtype="int64")


def profile_clusters(rfm: pd.DataFrame, cluster_ids: np.ndarray, *, stage: str) -> pd.DataFrame:
    """Profile each cluster: size, mean and median R/F/M and revenue share.

    ``revenue_share`` = the cluster's monetary sum / the monetary sum of all clustered customers
    (noise excluded), so the shares sum to 1 (NaN if that total is 0). Noise points are not
    profiled.

    Parameters
    ----------
    rfm : frame with ``recency_days, frequency, monetary``, aligned with ``cluster_ids``.
    cluster_ids : stable ids from ``order_clusters``.
    stage : value of the ``stage`` column.

    Returns
    -------
    DataFrame with ``PROFILE_COLUMNS``, one row per cluster, sorted by ``cluster_id``.
    """
    frame = rfm.loc[:, ["recency_days", "frequency", "monetary"]].assign(
        cluster_id=np.asarray(cluster_ids, dtype="int64")
    )
    frame = frame.loc[frame["cluster_id"] != NOISE_LABEL]
    grouped = frame.groupby("cluster_id", sort=True)
    profiles = grouped.agg(
        n_customers=("monetary", "size"),
        mean_recency_days=("recency_days", "mean"),
        median_recency_days=("recency_days", "median"),
        mean_frequency=("frequency", "mean"),
        median_frequency=("frequency", "median"),
        mean_monetary=("monetary", "mean"),
        median_monetary=("monetary", "median"),
        revenue=("monetary", "sum"),
    ).reset_index()
    total = float(profiles["revenue"].sum())
    profiles["revenue_share"] = profiles["revenue"] / total if total != 0 else np.nan
    profiles["stage"] = stage
    profiles = profiles.astype(
        {"cluster_id": "int64", "n_customers": "int64", "revenue_share": "float64"}
    )
    float_columns = [c for c in PROFILE_COLUMNS if c.startswith(("mean_", "median_"))]
    profiles[float_columns] = profiles[float_columns].astype("float64")
    return profiles.loc[:, list(PROFILE_COLUMNS)].reset_index(drop=True)


def select_kmeans(
    X: np.ndarray,
    *,
    stage: str,
    k_range: Sequence[int],
    n_clusters: int | None,
    random_state: int,
    n_init: int,
) -> tuple[KMeans, pd.DataFrame]:
    """Choose the number of clusters of a KMeans by silhouette.

    Scores KMeans for every k from ``k_range[0]`` to ``k_range[1]`` (capped at n_samples - 1) with
    ``evaluate_candidates`` and keeps the highest silhouette, or the pinned ``n_clusters``
    (``select_candidate``). Returns an unfitted ``KMeans`` at the selected k, for the caller's
    pipeline, and the selection table (``SELECTION_COLUMNS``).
    """
    k_min, k_max = k_range
    scores, _ = evaluate_candidates(
        X,
        stage=stage,
        k_values={"kmeans": range(k_min, min(k_max, len(X) - 1) + 1)},
        include_dbscan=False,
        random_state=random_state,
        n_init=n_init,
    )
    selection = select_candidate(scores, None, n_clusters)
    kmeans = KMeans(n_clusters=selected_key(selection)[1], n_init=n_init, random_state=random_state)
    return kmeans, selection
