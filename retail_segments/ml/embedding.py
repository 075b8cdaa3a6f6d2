"""Two-dimensional embeddings of the RFM table: PCA (part I) and t-SNE (part II).

Both embeddings are ``Pipeline(StandardScaler, <embedder>)`` fitted on the three RFM columns of the
clustered (non-outlier) customers. The functions here build the pipelines, fit them and summarise
the fitted embedders as rows of the ``embedding_summary`` table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

RFM_FEATURES: tuple[str, ...] = ("recency_days", "frequency", "monetary")

EMBEDDING_SUMMARY_COLUMNS: tuple[str, ...] = (
    "stage",
    "component",
    "explained_variance_ratio",
    "kl_divergence",
    "loading_recency",
    "loading_frequency",
    "loading_monetary",
)


def rfm_features(rfm: pd.DataFrame) -> pd.DataFrame:
    """Select the model features from an RFM frame.

    Parameters
    ----------
    rfm : DataFrame with at least the columns of ``RFM_FEATURES``.

    Returns
    -------
    DataFrame with exactly the columns ``recency_days, frequency, monetary`` (in that order) as
    float64, index preserved. Raises ``ValueError`` naming any missing column.
    """
    missing = [column for column in RFM_FEATURES if column not in rfm.columns]
    if missing:
        raise ValueError(f"RFM frame is missing columns: {missing}")
    return rfm.loc[:, list(RFM_FEATURES)].astype("float64")


def build_pca_pipeline(n_components: int = 2) -> Pipeline:
    """Return an unfitted ``Pipeline(StandardScaler, PCA(n_components))``.

    PCA uses the full (deterministic) LAPACK solver, so no random state is involved.
    """
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("pca", PCA(n_components=n_components, svd_solver="full")),
        ]
    )


def build_tsne_pipeline(
    perplexity: float = 50.0,
    random_state: int = 100,
    n_components: int = 2,
    n_jobs: int | None = None,
) -> Pipeline:
    """Return an unfitted ``Pipeline(StandardScaler, TSNE)``.

    ``TSNE`` has ``fit_transform`` but no ``transform``; as the final step of a ``Pipeline`` that is
    enough for ``Pipeline.fit_transform`` (which delegates to the last step's ``fit_transform``).
    The fitted pipeline cannot embed new customers: ``transform`` is unavailable by design of
    t-SNE. ``n_jobs`` only parallelises the neighbour search and does not change the result.
    """
    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "tsne",
                TSNE(
                    n_components=n_components,
                    perplexity=perplexity,
                    random_state=random_state,
                    n_jobs=n_jobs,
                ),
            ),
        ]
    )


def fit_embedding(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """Fit ``pipeline`` on ``features`` and return the embedding.

    Parameters
    ----------
    pipeline : an unfitted pipeline from ``build_pca_pipeline`` or ``build_tsne_pipeline``;
        it is fitted in place.
    features : RFM feature frame (see ``rfm_features``), one row per customer.

    Returns
    -------
    float64 array of shape ``(n_customers, n_components)``, rows in the order of ``features``.
    """
    return np.asarray(pipeline.fit_transform(features), dtype="float64")


def assign_by_neighbours(
    pipeline: Pipeline,
    fit_features: pd.DataFrame,
    fit_coordinates: np.ndarray,
    fit_labels: np.ndarray,
    features: pd.DataFrame,
    *,
    n_neighbors: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Place customers an embedding was not fitted on, by their nearest fitted customers.

    For t-SNE, which cannot ``transform``. Distances are taken in the pipeline's standardised
    space (its fitted ``scale`` step), where t-SNE's neighbourhoods were defined. Each customer
    gets the distance-weighted vote of its ``n_neighbors`` nearest fitted customers' labels
    (``KNeighborsClassifier``) and the distance-weighted mean of their coordinates
    (``KNeighborsRegressor``); a customer equal to fitted ones takes theirs.

    Parameters
    ----------
    pipeline : the fitted pipeline (``build_tsne_pipeline``) whose first step is ``scale``.
    fit_features, fit_coordinates, fit_labels : the fitted customers' RFM features, embedding
        and cluster labels, aligned row by row.
    features : RFM features of the customers to place.
    n_neighbors : fitted customers consulted (at most as many as there are).

    Returns
    -------
    ``(coordinates, labels)``: float64 ``(n, n_components)`` and int64 ``(n,)``, rows in the
    order of ``features``.
    """
    scale = pipeline.named_steps["scale"]
    fitted = scale.transform(fit_features)
    new = scale.transform(features)
    k = min(n_neighbors, len(fitted))
    labels = KNeighborsClassifier(n_neighbors=k, weights="distance").fit(fitted, fit_labels)
    coordinates = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(
        fitted, fit_coordinates
    )
    return (
        np.asarray(coordinates.predict(new), dtype="float64"),
        np.asarray(labels.predict(new), dtype="int64"),
    )


def pca_summary(pipeline: Pipeline) -> pd.DataFrame:
    """Summarise a fitted PCA pipeline as ``embedding_summary`` rows.

    One row per component (``component`` = 1, 2, ...) with its explained variance ratio and its
    loadings: the entries of ``PCA.components_`` (unit-norm eigenvectors of the correlation matrix,
    since the features are standardised) for recency, frequency and monetary. ``kl_divergence`` is
    null.
    """
    pca = pipeline.named_steps["pca"]
    n_components = pca.components_.shape[0]
    return pd.DataFrame(
        {
            "stage": "pca",
            "component": pd.array(np.arange(1, n_components + 1), dtype="Int64"),
            "explained_variance_ratio": pca.explained_variance_ratio_.astype("float64"),
            "kl_divergence": np.full(n_components, np.nan),
            "loading_recency": pca.components_[:, 0],
            "loading_frequency": pca.components_[:, 1],
            "loading_monetary": pca.components_[:, 2],
        },
        columns=list(EMBEDDING_SUMMARY_COLUMNS),
    )


def tsne_summary(pipeline: Pipeline) -> pd.DataFrame:
    """Summarise a fitted t-SNE pipeline as one ``embedding_summary`` row.

    The row has ``stage`` = 'tsne', the final ``kl_divergence_`` of the fit, and nulls for
    ``component``, ``explained_variance_ratio`` and the loadings (t-SNE has none of these).
    """
    tsne = pipeline.named_steps["tsne"]
    return pd.DataFrame(
        {
            "stage": ["tsne"],
            "component": pd.array([None], dtype="Int64"),
            "explained_variance_ratio": [np.nan],
            "kl_divergence": [float(tsne.kl_divergence_)],
            "loading_recency": [np.nan],
            "loading_frequency": [np.nan],
            "loading_monetary": [np.nan],
        },
        columns=list(EMBEDDING_SUMMARY_COLUMNS),
    )
