"""Entry points of parts I and II that the dbt Python models call.

``fit_pca_stage`` and ``fit_tsne_stage`` take the ``marts.customer_rfm`` frame, the seed
``segment_archetypes`` and the model's ``meta`` block, and return the stage's fit as one row
(``retail_segments.ml.results.fit_record``; ``StageFit.record``). Its keys say which fit it is:
``stage``, ``rfm_as_of``, ``n_customers`` (clustered), ``n_fit_sample``, the selected
``algorithm`` and ``n_clusters`` (and, for t-SNE, ``previous_model_version``: the registry model
whose names it could inherit). Its result tables are nested columns:

- ``customers``: one row per clustered (non-outlier) customer: ``customer_id``, the two stage
  coordinates (``<stage>_1``, ``<stage>_2``), ``<stage>_cluster_id``, ``<stage>_segment_name``
  and ``is_fit_sample``
- ``candidates``: one row per candidate clustering (``clustering.SELECTION_COLUMNS``)
- ``embedding_summary``: PCA components with loadings, or the t-SNE KL divergence row
- ``clusters``: one row per cluster: its name, meaning, strategy, archetype distance and where
  the name came from (``CLUSTER_COLUMNS``)

The cluster profiles (sizes, R/F/M means and medians, revenue share) are not part of the record:
the SQL model ``cluster_profiles`` computes them from ``customer_embeddings`` and
``customer_rfm``. The naming needs the same means, so ``StageFit.profiles`` holds the ones it was
given (``clustering.profile_clusters``, in memory only). ``run_pca_stage`` and ``run_tsne_stage``
are the same fits with the archetypes already validated and an optional previous model, returning
the `StageFit` itself (tests, notebooks); ``combine_stages`` joins the two stages' customers as the
SQL model ``customer_embeddings`` does.

Only non-outlier customers are embedded and clustered. Cluster id -1 marks DBSCAN noise: such
customers have no segment name here and are scored by the classifier later.

Settings: each stage's meta block is validated by `PcaSettings` or `TsneSettings`, the shared fit
sample by ``config.SamplingSettings`` (``SETTINGS`` maps the meta keys to them).

Scaling: t-SNE, the ward tree and the silhouette are quadratic (or worse) in the number of
customers, so both stages fit on the same reproducible stratified sample (``fit_sample_mask``,
``config.SamplingSettings``: at most 5,000 customers, more than the real file's 4,372, so at the
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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from retail_segments.ml.artifacts import (
    RegisteredModel,
    previous_registered_model,
)
from retail_segments.ml.clustering import (
    assign_clusters,
    evaluate_candidates,
    order_clusters,
    profile_clusters,
    select_candidate,
    selected_key,
)
from retail_segments.ml.config import (
    SamplingSettings,
    SettingsModel,
    as_settings,
    parse_meta,
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
from retail_segments.ml.naming import (
    DEFAULT_MIN_OVERLAP,
    NAME_COLUMNS,
    inherit_names,
    load_archetypes,
    name_clusters,
)
from retail_segments.ml.results import fit_record
from retail_segments.ml.settings import (
    SEGMENTATION_SETTINGS,
    PcaSettings,
    StageSettings,
    TsneSettings,
)
from retail_segments.ml.threads import fit_threads

# The dbt models of the two stages (their meta blocks are validated under these names).
PCA_MODEL = "ml_segmentation_pca_fit"
TSNE_MODEL = "ml_segmentation_tsne_fit"
# The registry name of the segment classifier whose names the t-SNE clusters may inherit.
SEGMENT_CLASSIFIER = "segment_classifier"

CLUSTER_COLUMNS: tuple[str, ...] = ("stage", *NAME_COLUMNS, "previous_model_version")

SETTINGS = SEGMENTATION_SETTINGS


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


def _candidate_options(settings: StageSettings) -> dict[str, Any]:
    return {
        "random_state": settings.random_state,
        "n_init": settings.n_init,
        "dbscan_min_samples": settings.dbscan_min_samples,
        "dbscan_core_fraction": settings.dbscan_core_fraction,
    }


def _select_clustering(
    stage: str, coordinates: np.ndarray, settings: PcaSettings | TsneSettings
) -> tuple[pd.DataFrame, np.ndarray]:
    """Evaluate and select the candidates on the fitted coordinates; return the selection table
    and the selected candidate's raw labels."""
    k_min, k_max = settings.k_range
    agglomerative_min, agglomerative_max = settings.agglomerative_k_range
    scores, labels = evaluate_candidates(
        coordinates,
        stage=stage,
        k_values={
            "kmeans": range(k_min, k_max + 1),
            "gaussian_mixture": range(k_min, k_max + 1),
            "agglomerative": range(agglomerative_min, agglomerative_max + 1),
        },
        include_dbscan=settings.include_dbscan,
        **_candidate_options(settings),
    )
    selection = select_candidate(
        scores,
        settings.algorithm,
        settings.n_clusters,
        k_bounds=(min(k_min, agglomerative_min), max(k_max, agglomerative_max)),
    )
    return selection, labels[selected_key(selection)]


@dataclass(frozen=True)
class StageFit:
    """One stage's fit: what the dbt model records, plus the profiles its names came from.

    ``customers``, ``candidates``, ``embedding_summary`` and ``clusters`` are the result tables of
    the record (module docstring). ``profiles`` (``clustering.PROFILE_COLUMNS``) are the cluster
    profiles the naming used; they stay in memory, the SQL model ``cluster_profiles`` computes the
    published ones. ``previous_model_version`` is the registry version whose names the clusters
    could inherit (None when there was none, and always for PCA).
    """

    stage: str
    customers: pd.DataFrame
    candidates: pd.DataFrame
    embedding_summary: pd.DataFrame
    clusters: pd.DataFrame
    profiles: pd.DataFrame
    previous_model_version: str | None = None

    def keys(self, rfm_as_of: pd.Timestamp) -> dict[str, object]:
        """The record's key columns: ``stage``, ``rfm_as_of``, ``n_customers``,
        ``n_fit_sample``, ``algorithm``, ``n_clusters`` and, for t-SNE,
        ``previous_model_version``."""
        algorithm, n_clusters = selected_key(self.candidates)
        keys: dict[str, object] = {
            "stage": self.stage,
            "rfm_as_of": pa.scalar(pd.Timestamp(rfm_as_of).to_pydatetime(), pa.timestamp("us")),
            "n_customers": len(self.customers),
            "n_fit_sample": int(self.customers["is_fit_sample"].sum()),
            "algorithm": algorithm,
            "n_clusters": n_clusters,
        }
        if self.stage == "tsne":
            keys["previous_model_version"] = pa.scalar(self.previous_model_version, pa.string())
        return keys

    def record(self, rfm_as_of: pd.Timestamp) -> pa.Table:
        """The fit as one row (``results.fit_record``): ``keys(rfm_as_of)``, then the result
        tables ``customers``, ``candidates``, ``embedding_summary`` and ``clusters``."""
        return fit_record(
            self.keys(rfm_as_of),
            {
                "customers": self.customers,
                "candidates": self.candidates,
                "embedding_summary": self.embedding_summary,
                "clusters": self.clusters,
            },
        )


def _stage_fit(
    stage: str,
    customers: pd.DataFrame,
    fit: np.ndarray,
    coordinates: np.ndarray,
    raw_labels: np.ndarray,
    archetypes: pd.DataFrame,
    selection: pd.DataFrame,
    summary: pd.DataFrame,
    previous: RegisteredModel | None = None,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> StageFit:
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
    names.insert(0, "stage", pd.Series([stage] * len(names), dtype="str"))
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
    return StageFit(
        stage=stage,
        customers=embeddings,
        candidates=selection,
        embedding_summary=summary,
        clusters=names.loc[:, list(CLUSTER_COLUMNS)],
        profiles=profiles,
        previous_model_version=version,
    )


def run_pca_stage(
    rfm: pd.DataFrame,
    archetypes: pd.DataFrame,
    config: Mapping[str, Any] | SettingsModel | None = None,
    sampling: Mapping[str, Any] | SettingsModel | None = None,
) -> StageFit:
    """Part I: PCA of the standardised RFM of non-outliers, clustering, and names.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (``customer_id, recency_days, frequency, monetary, is_outlier``).
    archetypes : output of ``naming.load_archetypes``.
    config : `PcaSettings`, or a mapping of overrides (validated by it).
    sampling : `SamplingSettings`, or a mapping of overrides (see the module docstring).

    Returns
    -------
    The `StageFit` of stage 'pca'.
    """
    settings = as_settings(PcaSettings, config, name=f"{PCA_MODEL}.meta.pca")
    sample = as_settings(SamplingSettings, sampling, name=f"{PCA_MODEL}.meta.sampling")
    customers = clustered_customers(rfm)
    fit = fit_sample_mask(customers, **sample.as_dict())
    features = rfm_features(customers)
    pipeline = build_pca_pipeline(n_components=2)
    with fit_threads(settings.max_threads):
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
    return _stage_fit(
        "pca",
        customers,
        fit,
        coordinates,
        raw_labels,
        archetypes,
        selection,
        pca_summary(pipeline),
    )


def run_tsne_stage(
    rfm: pd.DataFrame,
    archetypes: pd.DataFrame,
    config: Mapping[str, Any] | SettingsModel | None = None,
    sampling: Mapping[str, Any] | SettingsModel | None = None,
    previous: RegisteredModel | None = None,
) -> StageFit:
    """Part II: t-SNE of the standardised RFM of non-outliers, clustering, and names.

    Same inputs and output as ``run_pca_stage`` (`TsneSettings` for ``config``), plus
    ``previous``: the segment classifier of an earlier data window (the registry's, see
    ``artifacts.previous_registered_model``). When given, the clusters are named after the
    segments it predicts for their customers where they overlap enough (setting
    ``inherit_min_overlap``), so a retrain keeps names on the same customers; the other clusters
    are named by archetype. The ``clusters`` columns ``name_source`` and
    ``previous_model_version`` say which. The embedding is ``Pipeline(StandardScaler,
    TSNE(perplexity=50, random_state=100))`` by default and the summary is the single
    KL-divergence row. Customers outside the fit sample get the cluster and the
    (distance-weighted) mean coordinates of their ``assign_neighbors`` nearest fitted customers
    in standardised RFM space: t-SNE has no ``transform``, and it is built to keep exactly these
    neighbourhoods.
    """
    settings = as_settings(TsneSettings, config, name=f"{TSNE_MODEL}.meta.tsne")
    sample = as_settings(SamplingSettings, sampling, name=f"{TSNE_MODEL}.meta.sampling")
    customers = clustered_customers(rfm)
    fit = fit_sample_mask(customers, **sample.as_dict())
    features = rfm_features(customers)
    pipeline = build_tsne_pipeline(
        perplexity=float(settings.perplexity),
        random_state=settings.embedding_random_state,
        n_components=2,
        n_jobs=settings.n_jobs,
    )
    with fit_threads(settings.embedding_max_threads):
        fit_coordinates = fit_embedding(pipeline, features.loc[fit])
    with fit_threads(settings.max_threads):
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
                n_neighbors=settings.assign_neighbors,
            )
    return _stage_fit(
        "tsne",
        customers,
        fit,
        coordinates,
        raw_labels,
        archetypes,
        selection,
        tsne_summary(pipeline),
        previous,
        settings.inherit_min_overlap,
    )


def rfm_as_of(rfm: pd.DataFrame) -> pd.Timestamp:
    """The as-of moment of a ``customer_rfm`` frame: the latest ``rfm_as_of`` (the mart has one).

    Raises ``ValueError`` when the column is missing or the frame has no customers."""
    if "rfm_as_of" not in rfm.columns:
        raise ValueError("customer_rfm frame is missing columns: ['rfm_as_of']")
    as_of = rfm["rfm_as_of"].max()
    if pd.isna(as_of):
        raise ValueError("customer_rfm frame has no customers: nothing to segment")
    return pd.Timestamp(as_of)


def fit_pca_stage(
    rfm: pd.DataFrame, archetypes: pd.DataFrame, meta: Mapping[str, Any] | None = None
) -> pa.Table:
    """The fit of ``ml_segmentation_pca_fit``: part I as one keyed row (module docstring).

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (``customer_id``, R/F/M, ``is_outlier``, ``rfm_as_of``).
    archetypes : the seed ``segment_archetypes`` as read (``naming.load_archetypes`` checks it).
    meta : the model's meta block: ``pca`` (`PcaSettings`) and ``sampling``
        (`SamplingSettings`); an unknown key or value raises `ConfigError`.

    Returns
    -------
    One-row ``pyarrow.Table`` (``StageFit.record``).
    """
    settings = parse_meta(meta, {"pca": PcaSettings, "sampling": SamplingSettings}, model=PCA_MODEL)
    fit = run_pca_stage(rfm, load_archetypes(archetypes), settings["pca"], settings["sampling"])
    return fit.record(rfm_as_of(rfm))


def fit_tsne_stage(
    rfm: pd.DataFrame,
    archetypes: pd.DataFrame,
    meta: Mapping[str, Any] | None = None,
    registry: pd.DataFrame | None = None,
) -> pa.Table:
    """The fit of ``ml_segmentation_tsne_fit``: part II as one keyed row (module docstring).

    Same inputs as ``fit_pca_stage`` (meta keys ``tsne`` and ``sampling``), plus ``registry``:
    the rows of ``ml.model_registry`` (``model_name``, ``model_version``, ``data_window_end``,
    ``artifact``), or None when it does not exist yet. The segment classifier of the latest data
    window before ``rfm_as_of`` (``artifacts.previous_registered_model``) names the clusters it
    covers well; the record's ``previous_model_version`` says which it was.
    """
    settings = parse_meta(
        meta, {"tsne": TsneSettings, "sampling": SamplingSettings}, model=TSNE_MODEL
    )
    as_of = rfm_as_of(rfm)
    previous = previous_registered_model(registry, model_name=SEGMENT_CLASSIFIER, before=as_of)
    fit = run_tsne_stage(
        rfm, load_archetypes(archetypes), settings["tsne"], settings["sampling"], previous
    )
    return fit.record(as_of)


def combine_stages(pca: StageFit, tsne: StageFit) -> pd.DataFrame:
    """Join the customers of both stages as the SQL model ``customer_embeddings`` does, in memory
    (tests, notebooks).

    Returns one row per customer with ``customer_id, pca_1, pca_2, tsne_1, tsne_2,
    pca_cluster_id, tsne_cluster_id, pca_segment_name, tsne_segment_name, is_fit_sample``,
    sorted by ``customer_id``. Both stages must have embedded the same customers and fitted the
    same sample (``ValueError`` otherwise).
    """
    keys = ["customer_id", "is_fit_sample"]
    pca_keys = pca.customers.loc[:, keys].sort_values(keys).reset_index(drop=True)
    tsne_keys = tsne.customers.loc[:, keys].sort_values(keys).reset_index(drop=True)
    if not pca_keys.equals(tsne_keys):
        raise ValueError("the PCA and t-SNE stages embedded different customers or samples")
    embeddings = pca.customers.merge(tsne.customers, on=keys, how="inner", validate="one_to_one")
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
    return (
        embeddings.loc[:, columns].sort_values("customer_id", kind="stable").reset_index(drop=True)
    )
