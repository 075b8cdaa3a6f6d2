"""PCA and t-SNE embeddings of the RFM table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from retail_segments.ml.embedding import (
    EMBEDDING_SUMMARY_COLUMNS,
    build_pca_pipeline,
    build_tsne_pipeline,
    fit_embedding,
    pca_summary,
    rfm_features,
    tsne_summary,
)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 120
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "recency_days": rng.integers(0, 365, n),
            "frequency": np.ceil(rng.lognormal(1.0, 0.8, n)).astype("int64"),
            "monetary": rng.lognormal(6.0, 1.0, n),
        }
    )
    return rfm_features(frame)


def test_rfm_features_selects_and_orders_columns() -> None:
    frame = pd.DataFrame({"monetary": [1.5], "extra": ["x"], "frequency": [2], "recency_days": [3]})
    selected = rfm_features(frame)
    assert list(selected.columns) == ["recency_days", "frequency", "monetary"]
    assert (selected.dtypes == "float64").all()


def test_rfm_features_names_missing_column() -> None:
    with pytest.raises(ValueError, match="monetary"):
        rfm_features(pd.DataFrame({"recency_days": [1], "frequency": [1]}))


def test_pca_summary_reports_variance_and_unit_loadings(features: pd.DataFrame) -> None:
    pipeline = build_pca_pipeline()
    coordinates = fit_embedding(pipeline, features)
    summary = pca_summary(pipeline)

    assert coordinates.shape == (len(features), 2)
    assert list(summary.columns) == list(EMBEDDING_SUMMARY_COLUMNS)
    assert summary["component"].tolist() == [1, 2]
    ratios = summary["explained_variance_ratio"].to_numpy()
    assert ratios[0] >= ratios[1] > 0
    assert ratios.sum() <= 1 + 1e-12
    loadings = summary[["loading_recency", "loading_frequency", "loading_monetary"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(loadings, axis=1), 1.0)
    assert summary["kl_divergence"].isna().all()


def test_pca_coordinates_are_the_standardised_projection(features: pd.DataFrame) -> None:
    pipeline = build_pca_pipeline()
    coordinates = fit_embedding(pipeline, features)
    standardised = (features - features.mean()) / features.std(ddof=0)
    loadings = pipeline.named_steps["pca"].components_
    np.testing.assert_allclose(coordinates, standardised.to_numpy() @ loadings.T, atol=1e-9)


def test_tsne_pipeline_fits_and_is_reproducible(features: pd.DataFrame) -> None:
    first = build_tsne_pipeline(perplexity=20.0, random_state=100)
    second = build_tsne_pipeline(perplexity=20.0, random_state=100)
    with threadpool_limits(limits=1):
        coordinates = fit_embedding(first, features)
        again = fit_embedding(second, features)

    np.testing.assert_array_equal(coordinates, again)
    assert coordinates.shape == (len(features), 2)
    summary = tsne_summary(first)
    assert list(summary.columns) == list(EMBEDDING_SUMMARY_COLUMNS)
    assert len(summary) == 1
    assert summary.at[0, "stage"] == "tsne"
    assert summary["component"].isna().all()
    assert summary.at[0, "kl_divergence"] == pytest.approx(first[-1].kl_divergence_)
    assert summary.at[0, "kl_divergence"] > 0
