"""Entry points of parts I and II that the dbt Python models call.

``run_pca_stage`` and ``run_tsne_stage`` each take the ``marts.customer_rfm`` frame, the validated
archetypes and a plain config dict (dbt model ``config.meta``), and return a dict of frames:

- ``cluster_model_selection``: one row per candidate clustering (``SELECTION_COLUMNS``)
- ``embedding_summary``: PCA components with loadings, or the t-SNE KL divergence row
- ``customer_embeddings``: ``customer_id``, the two stage coordinates, ``<stage>_cluster_id`` and
  ``<stage>_segment_name`` (one row per non-outlier customer, sorted by ``customer_id``)
- ``cluster_profiles``: profile, name, meaning and strategy of every cluster
  (``CLUSTER_PROFILE_COLUMNS``)

``combine_stages`` stacks the two results into the warehouse tables in memory
(``customer_embeddings`` then has ``customer_id, pca_1, pca_2, tsne_1, tsne_2, pca_cluster_id,
tsne_cluster_id`` first); the dbt build does the same in SQL over the two stages' Python models.
Only non-outlier customers are embedded and clustered. Cluster id -1 marks DBSCAN noise: such
customers have no segment name here and are scored by the classifier later.

Scaling: t-SNE, the ward tree and the silhouette are quadratic (or worse) in the number of
customers, so both stages fit on the same reproducible stratified sample (``fit_sample_mask``,
config ``SAMPLING_DEFAULTS``: at most 5,000 customers, more than the real file's 4,372, so at the
real scale everyone is fitted and nothing changes). The embedding, the candidate clusterings and
their scores use the sample only; every other customer is then assigned
(``is_fit_sample`` false):

- PCA: ``pipeline.transform`` gives the coordinates, the selected clustering assigns the cluster
  (``clustering.assign_clusters``: KMeans / GaussianMixture ``predict``, nearest centroid for
  agglomerative, nearest core point within eps for DBSCAN);
- t-SNE (no ``transform``): cluster and coordinates come from the ``assign_neighbors`` nearest
  fitted customers in standardised RFM space (``embedding.assign_by_neighbours``).

Cluster ids, profiles and names are computed on all clustered customers, fitted and assigned.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from retail_segments.ml.artifacts import RegisteredModel
from retail_segments.ml.clustering import (
    ALGORITHMS,
    PROFILE_COLUMNS,
    assign_clusters,
    evaluate_candidates,
    order_clusters,
    profile_clusters,
    select_candidate,
    selected_key,
)
from retail_segments.ml.embedding import (
    RFM_FEATURES,
    assign_by_neighbours,
    build_pca_pipeline,
    build_tsne_pipeline,
    fit_embedding,
    pca_summary,
    rfm_features,
    tsne_summary,
)
from retail_segments.ml.naming import DEFAULT_MIN_OVERLAP, inherit_names, name_clusters

CLUSTER_PROFILE_COLUMNS: tuple[str, ...] = (
    "stage",
    "cluster_id",
    "segment_name",
    *PROFILE_COLUMNS[2:],
    "meaning",
    "strategy",
    "archetype_distance",
    "n_fit_sample",
    "name_source",
    "previous_model_version",
)

_COMMON_DEFAULTS: dict[str, Any] = {
    "algorithm": None,
    "n_clusters": None,
    "include_dbscan": True,
    "random_state": 42,
    "n_init": 10,
    "dbscan_min_samples": 4,
    "dbscan_core_fraction": 0.9,
    "max_threads": 1,
}

PCA_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        **_COMMON_DEFAULTS,
        "k_range": [2, 10],
        "agglomerative_k_range": [2, 10],
    }
)

TSNE_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        **_COMMON_DEFAULTS,
        "k_range": [3, 8],
        "agglomerative_k_range": [2, 8],
        "perplexity": 50.0,
        "embedding_random_state": 100,
        "n_jobs": None,
        "assign_neighbors": 10,
        "inherit_min_overlap": DEFAULT_MIN_OVERLAP,
        # OpenMP threads of the t-SNE gradient (Barnes-Hut) alone. Measured on the real file:
        # 23.2 s with one thread, 14.8 s with two, bit-identical coordinates; in the build the
        # other dbt thread is mostly running light tests while t-SNE runs.
        "embedding_max_threads": 2,
    }
)

# 5,000: the smallest round size above the real file's 4,372 customers, so the study's results
# are unchanged. Measured on the 2-core machine from 4,000 to 8,000 customers, one t-SNE fit
# took 2.5 times as long, one ward tree 3.7 times and one silhouette 3 times; with the sample the
# fit costs what it costs on the real file at every scale, and only the assignment grows (linear).
SAMPLING_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"sample_size": 5_000, "random_state": 42, "strata_bins": 5}
)
MIN_SAMPLE_SIZE = 100


def validate_config(
    config: Mapping[str, Any] | None, defaults: Mapping[str, Any], *, name: str
) -> dict[str, Any]:
    """Merge a user config over ``defaults`` after checking its keys.

    Parameters
    ----------
    config : user values (may be ``None`` or empty).
    defaults : every allowed key with its default value.
    name : label used in error messages (e.g. 'pca stage config').

    Returns
    -------
    New dict with every key of ``defaults``. Raises ``ValueError`` naming any unknown key.
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; allowed keys are {sorted(defaults)}")
    return {**defaults, **config}


def _check_int(
    config: Mapping[str, Any], key: str, minimum: int, *, optional: bool = False
) -> None:
    value = config[key]
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"config key {key!r} must be an integer >= {minimum}, got {value!r}")


def _check_range(config: Mapping[str, Any], key: str) -> None:
    value = config[key]
    valid = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
        and 2 <= value[0] <= value[1]
    )
    if not valid:
        raise ValueError(f"config key {key!r} must be [k_min, k_max] with 2 <= k_min <= k_max")


def stage_config(stage: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate a stage config and fill in the defaults.

    Parameters
    ----------
    stage : 'pca' (defaults ``PCA_DEFAULTS``) or 'tsne' (defaults ``TSNE_DEFAULTS``).
    config : user overrides. Keys: ``algorithm`` (pin one of ``ALGORITHMS``, or None),
        ``n_clusters`` (pin k, or None), ``k_range`` (inclusive [min, max] for KMeans and
        GaussianMixture), ``agglomerative_k_range``, ``include_dbscan``, ``random_state``,
        ``n_init``, ``dbscan_min_samples``, ``dbscan_core_fraction``, ``max_threads`` (OpenMP/BLAS
        threads during the stage via threadpoolctl; default 1, null = library default; results do
        not depend on it, but with dbt running models in parallel on two cores, multi-threaded
        t-SNE/KMeans were several times slower than one thread); for stage 'tsne' also
        ``perplexity``, ``embedding_random_state``, ``n_jobs``, ``assign_neighbors`` (how
        many fitted customers place a customer outside the fit sample),
        ``inherit_min_overlap`` (share of a cluster the previous model's segment must hold for the
        cluster to inherit its name, see ``naming.inherit_names``) and ``embedding_max_threads``
        (OpenMP threads of the t-SNE fit alone; its result does not depend on them). Both
        embeddings have two components (the table contract has two coordinates per stage).

    Returns
    -------
    Complete config dict. Raises ``ValueError`` naming an unknown key or an invalid value.
    """
    defaults = {"pca": PCA_DEFAULTS, "tsne": TSNE_DEFAULTS}.get(stage)
    if defaults is None:
        raise ValueError(f"unknown stage {stage!r}; expected 'pca' or 'tsne'")
    merged = validate_config(config, defaults, name=f"{stage} stage config")
    if merged["algorithm"] is not None and merged["algorithm"] not in ALGORITHMS:
        raise ValueError(f"config key 'algorithm' must be one of {ALGORITHMS} or null")
    _check_int(merged, "n_clusters", 2, optional=True)
    _check_int(merged, "random_state", 0)
    _check_int(merged, "n_init", 1)
    _check_int(merged, "dbscan_min_samples", 2)
    _check_int(merged, "max_threads", 1, optional=True)
    _check_range(merged, "k_range")
    _check_range(merged, "agglomerative_k_range")
    if not isinstance(merged["include_dbscan"], bool):
        raise ValueError("config key 'include_dbscan' must be true or false")
    fraction = merged["dbscan_core_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise ValueError("config key 'dbscan_core_fraction' must be a number in (0, 1]")
    if stage == "tsne":
        _check_int(merged, "embedding_random_state", 0)
        _check_int(merged, "n_jobs", -1, optional=True)
        _check_int(merged, "assign_neighbors", 1)
        _check_int(merged, "embedding_max_threads", 1, optional=True)
        perplexity = merged["perplexity"]
        numeric = isinstance(perplexity, int | float) and not isinstance(perplexity, bool)
        if not numeric or perplexity <= 0:
            raise ValueError("config key 'perplexity' must be a positive number")
        overlap = merged["inherit_min_overlap"]
        numeric = isinstance(overlap, int | float) and not isinstance(overlap, bool)
        if not numeric or not 0 < overlap <= 1:
            raise ValueError("config key 'inherit_min_overlap' must be a number in (0, 1]")
    return merged


def sampling_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate the fit-sample config and fill in ``SAMPLING_DEFAULTS``.

    Keys: ``sample_size`` (most customers the embeddings and clusterings are fitted on; at least
    ``MIN_SAMPLE_SIZE``), ``random_state`` (seed of the draw) and ``strata_bins`` (quantile bins
    per R, F and M; strata are their cells). Raises ``ValueError`` naming an unknown key or an
    invalid value.
    """
    merged = validate_config(config, SAMPLING_DEFAULTS, name="sampling config")
    _check_int(merged, "sample_size", MIN_SAMPLE_SIZE)
    _check_int(merged, "random_state", 0)
    _check_int(merged, "strata_bins", 1)
    return merged


def rfm_strata(customers: pd.DataFrame, bins: int) -> np.ndarray:
    """Stratum of each customer: the cell of its quantile bins of recency, frequency, monetary.

    Each feature is cut into ``bins`` bins of (about) equal counts by its average rank, so tied
    values share a bin. Returns an int64 array aligned with the rows, values in ``[0, bins**3)``.
    """
    features = rfm_features(customers)
    n = len(features)
    strata = np.zeros(n, dtype="int64")
    for column in RFM_FEATURES:
        ranks = features[column].rank(method="average").to_numpy()
        strata = strata * bins + np.minimum(((ranks - 0.5) * bins / n).astype("int64"), bins - 1)
    return strata


def fit_sample_mask(
    customers: pd.DataFrame, sample_size: int, random_state: int = 42, strata_bins: int = 5
) -> np.ndarray:
    """Choose the customers the embeddings and clusterings are fitted on.

    When there are at most ``sample_size`` customers, all of them. Otherwise exactly
    ``sample_size``, stratified by ``rfm_strata``: each stratum gets its proportional share
    (largest remainders round it, ties to the lower stratum), filled with the stratum's customers
    that come first in one random permutation of all rows (``numpy.random.default_rng
    (random_state)``). The same rows in the same order give the same sample.

    Returns
    -------
    bool array aligned with the rows of ``customers``.
    """
    n = len(customers)
    if n <= sample_size:
        return np.ones(n, dtype=bool)
    strata = rfm_strata(customers, strata_bins)
    counts = np.bincount(strata, minlength=strata_bins**3)
    quotas = sample_size * counts / n
    take = np.floor(quotas).astype("int64")
    remainders = quotas - take
    take[np.argsort(-remainders, kind="stable")[: sample_size - int(take.sum())]] += 1
    priority = np.random.default_rng(random_state).permutation(n)
    order = np.lexsort((priority, strata))
    first_of_stratum = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(n, dtype="int64")
    position[order] = np.arange(n) - first_of_stratum[strata[order]]
    return position < take[strata]


def clustered_customers(rfm: pd.DataFrame) -> pd.DataFrame:
    """Return the non-outlier rows of ``rfm`` sorted by ``customer_id`` with a fresh index."""
    required = ["customer_id", "recency_days", "frequency", "monetary", "is_outlier"]
    missing = [column for column in required if column not in rfm.columns]
    if missing:
        raise ValueError(f"customer_rfm frame is missing columns: {missing}")
    kept = rfm.loc[~rfm["is_outlier"].astype("bool"), required[:4]]
    return kept.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _candidate_options(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: config[key]
        for key in ("random_state", "n_init", "dbscan_min_samples", "dbscan_core_fraction")
    }


def _select_clustering(
    stage: str, coordinates: np.ndarray, config: Mapping[str, Any]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Evaluate and select the candidates on the fitted coordinates; return the selection table
    and the selected candidate's raw labels."""
    k_min, k_max = config["k_range"]
    agglomerative_min, agglomerative_max = config["agglomerative_k_range"]
    scores, labels = evaluate_candidates(
        coordinates,
        stage=stage,
        k_values={
            "kmeans": range(k_min, k_max + 1),
            "gaussian_mixture": range(k_min, k_max + 1),
            "agglomerative": range(agglomerative_min, agglomerative_max + 1),
        },
        include_dbscan=config["include_dbscan"],
        **_candidate_options(config),
    )
    selection = select_candidate(
        scores,
        config["algorithm"],
        config["n_clusters"],
        k_bounds=(min(k_min, agglomerative_min), max(k_max, agglomerative_max)),
    )
    return selection, labels[selected_key(selection)]


def _stage_tables(
    stage: str,
    customers: pd.DataFrame,
    fit: np.ndarray,
    coordinates: np.ndarray,
    raw_labels: np.ndarray,
    archetypes: pd.DataFrame,
    previous: RegisteredModel | None = None,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> dict[str, pd.DataFrame]:
    """Order, profile and name the clusters of all customers (fitted and assigned); with a
    ``previous`` model, clusters inherit its names first (``naming.inherit_names``)."""
    cluster_ids = order_clusters(raw_labels, customers)
    profiles = profile_clusters(customers, cluster_ids, stage=stage)
    inherited = None
    if previous is not None:
        previous_names = previous.estimator.predict(rfm_features(customers))
        inherited = inherit_names(cluster_ids, previous_names, min_overlap=min_overlap)
    names = name_clusters(profiles, archetypes, stage=stage, inherited=inherited)
    version = previous.version if previous is not None else None
    names["previous_model_version"] = pd.Series(
        [version if source == "previous_model" else None for source in names["name_source"]],
        dtype="str",
    )
    profiles = profiles.merge(names, on="cluster_id", how="left", validate="one_to_one")
    fitted_ids = pd.Series(cluster_ids[fit]).value_counts()
    profiles["n_fit_sample"] = (
        profiles["cluster_id"].map(fitted_ids).fillna(0).astype("int64").to_numpy()
    )
    embeddings = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype("int64"),
            f"{stage}_1": coordinates[:, 0],
            f"{stage}_2": coordinates[:, 1],
            f"{stage}_cluster_id": cluster_ids,
        }
    )
    embeddings[f"{stage}_segment_name"] = (
        embeddings[f"{stage}_cluster_id"]
        .map(names.set_index("cluster_id")["segment_name"])
        .astype("str")
    )
    embeddings["is_fit_sample"] = fit
    return {
        "customer_embeddings": embeddings,
        "cluster_profiles": profiles.loc[:, list(CLUSTER_PROFILE_COLUMNS)],
    }


def run_pca_stage(
    rfm: pd.DataFrame,
    archetypes: pd.DataFrame,
    config: Mapping[str, Any] | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Part I: PCA of the standardised RFM of non-outliers, clustering, profiles and names.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (``customer_id, recency_days, frequency, monetary, is_outlier``).
    archetypes : output of ``naming.load_archetypes``.
    config : optional overrides, see ``stage_config``.
    sampling : optional fit-sample overrides, see ``sampling_config`` and the module docstring.

    Returns
    -------
    ``{"cluster_model_selection", "embedding_summary", "customer_embeddings",
    "cluster_profiles"}`` as described in the module docstring; ``customer_embeddings`` also has
    ``is_fit_sample`` and ``cluster_profiles`` ``n_fit_sample``.
    """
    settings = stage_config("pca", config)
    customers = clustered_customers(rfm)
    fit = fit_sample_mask(customers, **sampling_config(sampling))
    features = rfm_features(customers)
    pipeline = build_pca_pipeline(n_components=2)
    with threadpool_limits(limits=settings["max_threads"]):
        fit_coordinates = fit_embedding(pipeline, features.loc[fit])
        selection, fit_labels = _select_clustering("pca", fit_coordinates, settings)
        coordinates = np.empty((len(customers), 2))
        raw_labels = np.empty(len(customers), dtype="int64")
        coordinates[fit], raw_labels[fit] = fit_coordinates, fit_labels
        if not fit.all():
            coordinates[~fit] = pipeline.transform(features.loc[~fit])
            raw_labels[~fit] = assign_clusters(
                fit_coordinates,
                fit_labels,
                coordinates[~fit],
                *selected_key(selection),
                **_candidate_options(settings),
            )
    tables = _stage_tables("pca", customers, fit, coordinates, raw_labels, archetypes)
    return {
        **tables,
        "cluster_model_selection": selection,
        "embedding_summary": pca_summary(pipeline),
    }


def run_tsne_stage(
    rfm: pd.DataFrame,
    archetypes: pd.DataFrame,
    config: Mapping[str, Any] | None = None,
    sampling: Mapping[str, Any] | None = None,
    previous: RegisteredModel | None = None,
) -> dict[str, pd.DataFrame]:
    """Part II: t-SNE of the standardised RFM of non-outliers, clustering, profiles and names.

    Same inputs and outputs as ``run_pca_stage``, plus ``previous``: the segment classifier of an
    earlier data window (the registry's, see ``artifacts.previous_registered_model``). When given,
    the clusters are named after the segments it predicts for their customers where they overlap
    enough (config ``inherit_min_overlap``), so a retrain keeps names on the same customers;
    the other clusters are named by archetype. ``cluster_profiles.name_source`` and
    ``previous_model_version`` say which. The embedding is
    ``Pipeline(StandardScaler, TSNE(perplexity=50, random_state=100))`` by default and the
    summary is the single KL-divergence row. Customers outside the fit sample get the cluster
    and the (distance-weighted) mean coordinates of their ``assign_neighbors`` nearest fitted
    customers in standardised RFM space: t-SNE has no ``transform``, and it is built to keep
    exactly these neighbourhoods.
    """
    settings = stage_config("tsne", config)
    customers = clustered_customers(rfm)
    fit = fit_sample_mask(customers, **sampling_config(sampling))
    features = rfm_features(customers)
    pipeline = build_tsne_pipeline(
        perplexity=float(settings["perplexity"]),
        random_state=settings["embedding_random_state"],
        n_components=2,
        n_jobs=settings["n_jobs"],
    )
    with threadpool_limits(limits=settings["embedding_max_threads"]):
        fit_coordinates = fit_embedding(pipeline, features.loc[fit])
    with threadpool_limits(limits=settings["max_threads"]):
        selection, fit_labels = _select_clustering("tsne", fit_coordinates, settings)
        coordinates = np.empty((len(customers), 2))
        raw_labels = np.empty(len(customers), dtype="int64")
        coordinates[fit], raw_labels[fit] = fit_coordinates, fit_labels
        if not fit.all():
            coordinates[~fit], raw_labels[~fit] = assign_by_neighbours(
                pipeline,
                features.loc[fit],
                fit_coordinates,
                fit_labels,
                features.loc[~fit],
                n_neighbors=settings["assign_neighbors"],
            )
    tables = _stage_tables(
        "tsne",
        customers,
        fit,
        coordinates,
        raw_labels,
        archetypes,
        previous,
        settings["inherit_min_overlap"],
    )
    return {
        **tables,
        "cluster_model_selection": selection,
        "embedding_summary": tsne_summary(pipeline),
    }


def combine_stages(
    pca: Mapping[str, pd.DataFrame], tsne: Mapping[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """Stack the outputs of ``run_pca_stage`` and ``run_tsne_stage`` into the warehouse tables,
    in memory (tests, notebooks). The dbt build runs the stages as two Python models and does
    the same combination in SQL (``models/ml/segmentation/customer_embeddings.sql`` and the
    other three).

    Returns the same four keys; ``customer_embeddings`` is joined on ``customer_id`` (both stages
    embed the same customers) with columns ``customer_id, pca_1, pca_2, tsne_1, tsne_2,
    pca_cluster_id, tsne_cluster_id, pca_segment_name, tsne_segment_name, is_fit_sample``.
    Both stages must have embedded the same customers and fitted the same sample.
    """
    keys = ["customer_id", "is_fit_sample"]
    pca_keys = pca["customer_embeddings"].loc[:, keys].sort_values(keys).reset_index(drop=True)
    tsne_keys = tsne["customer_embeddings"].loc[:, keys].sort_values(keys).reset_index(drop=True)
    if not pca_keys.equals(tsne_keys):
        raise ValueError("the PCA and t-SNE stages embedded different customers or samples")
    embeddings = pca["customer_embeddings"].merge(
        tsne["customer_embeddings"], on=keys, how="inner", validate="one_to_one"
    )
    columns = [
        "customer_id",
        "pca_1",
        "pca_2",
        "tsne_1",
        "tsne_2",
        "pca_cluster_id",
        "tsne_cluster_id",
        "pca_segment_name",
        "tsne_segment_name",
        "is_fit_sample",
    ]
    stacked = {
        key: pd.concat([pca[key], tsne[key]], ignore_index=True)
        for key in ("cluster_model_selection", "embedding_summary", "cluster_profiles")
    }
    return {
        **stacked,
        "customer_embeddings": embeddings.loc[:, columns]
        .sort_values("customer_id", kind="stable")
        .reset_index(drop=True),
    }
