"""Fitting parts I and II on a stratified sample and assigning everyone else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import calinski_harabasz_score, silhouette_score

from retail_segments.ml import clustering
from retail_segments.ml.classifier import training_frame
from retail_segments.ml.clustering import (
    NOISE_LABEL,
    assign_clusters,
    evaluate_candidates,
    fit_labels,
    score_labels,
)
from retail_segments.ml.config import MIN_SAMPLE_SIZE, ConfigError
from retail_segments.ml.embedding import (
    assign_by_neighbours,
    build_pca_pipeline,
    fit_embedding,
    rfm_features,
)
from retail_segments.ml.naming import load_archetypes
from retail_segments.ml.segmentation import (
    combine_stages,
    fit_sample_mask,
    rfm_strata,
    run_pca_stage,
    run_tsne_stage,
)

SEED_FILE = Path(__file__).resolve().parents[2] / "seeds" / "segment_archetypes.csv"
SMALL_SAMPLE = {"sample_size": 150}
SMALL_TSNE = {"perplexity": 20.0, "k_range": [3, 5], "agglomerative_k_range": [2, 5]}


@pytest.fixture(scope="module")
def rfm() -> pd.DataFrame:
    """600 customers in three groups, skewed like RFM, plus two outliers."""
    rng = np.random.default_rng(5)
    groups = [(15, 12, 4000.0, 100), (150, 4, 900.0, 200), (320, 1, 150.0, 300)]
    parts = [
        pd.DataFrame(
            {
                "recency_days": np.maximum(0, rng.normal(recency, 10, n)).astype("int64"),
                "frequency": np.maximum(1, rng.normal(frequency, 1, n)).astype("int64"),
                "monetary": np.abs(rng.normal(monetary, monetary / 8, n)),
            }
        )
        for recency, frequency, monetary, n in groups
    ]
    frame = pd.concat(parts, ignore_index=True)
    frame["is_outlier"] = False
    frame.loc[len(frame)] = [1, 200, 250000.0, True]
    frame.loc[len(frame)] = [3, 150, 180000.0, True]
    frame.insert(0, "customer_id", rng.permutation(len(frame)) + 20000)
    return frame.astype({"recency_days": "int64", "frequency": "int64", "is_outlier": "bool"})


@pytest.fixture(scope="module")
def archetypes() -> pd.DataFrame:
    return load_archetypes(SEED_FILE)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(
        n_samples=300, centers=[[-10, -10], [-10, 10], [10, 0]], cluster_std=1.0, random_state=2
    )


def test_the_whole_population_is_fitted_when_it_fits(rfm: pd.DataFrame) -> None:
    mask = fit_sample_mask(rfm, sample_size=len(rfm))
    assert mask.dtype == bool
    assert mask.all()


def test_the_sample_is_exact_reproducible_and_stratified(rfm: pd.DataFrame) -> None:
    mask = fit_sample_mask(rfm, sample_size=150, random_state=1)
    assert mask.sum() == 150
    np.testing.assert_array_equal(mask, fit_sample_mask(rfm, sample_size=150, random_state=1))
    assert not np.array_equal(mask, fit_sample_mask(rfm, sample_size=150, random_state=2))
    strata = pd.Series(rfm_strata(rfm, bins=5))
    population = strata.value_counts()
    sampled = strata[mask].value_counts().reindex(population.index, fill_value=0)
    quota = population * 150 / len(rfm)
    assert ((sampled - quota).abs() < 1).all()  # every stratum gets its share, rounded


def test_strata_are_quantile_cells_with_ties_together() -> None:
    frame = pd.DataFrame(
        {"recency_days": [5, 5, 5, 9], "frequency": [1, 1, 2, 3], "monetary": [1.0, 2.0, 3.0, 4.0]}
    )
    strata = rfm_strata(frame, bins=2)
    recency_bin, rest = np.divmod(strata, 4)
    frequency_bin, monetary_bin = np.divmod(rest, 2)
    assert recency_bin.tolist() == [0, 0, 0, 1]  # three tied recencies share the lower bin
    assert frequency_bin.tolist() == [0, 0, 1, 1]
    assert monetary_bin.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"size": 10}, "unknown key 'size'"),
        ({"sample_size": MIN_SAMPLE_SIZE - 1}, "key 'sample_size' = 99"),
        ({"sample_size": 1000.0}, "key 'sample_size' = 1000.0"),
        ({"strata_bins": 0}, "key 'strata_bins'"),
    ],
)
def test_the_stages_refuse_a_bad_sampling_block(
    rfm: pd.DataFrame, archetypes: pd.DataFrame, config: dict, message: str
) -> None:
    """A bad meta.sampling is refused before anything is fitted, named after the stage's model."""
    with pytest.raises(ConfigError, match=f"ml_segmentation_pca_fit.meta.sampling: {message}"):
        run_pca_stage(rfm, archetypes, None, config)
    with pytest.raises(ConfigError, match=f"ml_segmentation_tsne_fit.meta.sampling: {message}"):
        run_tsne_stage(rfm, archetypes, None, config)


def test_shared_work_gives_the_scores_of_separate_fits(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = blobs
    scores, labels = evaluate_candidates(
        X, stage="pca", k_values={"agglomerative": range(2, 6)}, include_dbscan=False
    )
    for row in scores.itertuples():
        alone = fit_labels(X, "agglomerative", row.n_clusters)
        np.testing.assert_array_equal(labels[("agglomerative", row.n_clusters)], alone)
        assert (row.silhouette, row.calinski_harabasz, row.davies_bouldin) == score_labels(X, alone)


def test_large_inputs_estimate_the_silhouette_on_a_seeded_sample(
    blobs: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = blobs
    monkeypatch.setattr(clustering, "EXACT_SILHOUETTE_MAX_SAMPLES", 100)
    scores, labels = evaluate_candidates(
        X, stage="pca", k_values={"kmeans": [3]}, include_dbscan=False, random_state=7
    )
    found = labels[("kmeans", 3)]
    sampled = silhouette_score(X, found, sample_size=100, random_state=7)
    assert scores.at[0, "silhouette"] == sampled != silhouette_score(X, found)
    assert scores.at[0, "calinski_harabasz"] == calinski_harabasz_score(X, found)


def test_silhouette_from_precomputed_distances_ignores_noise(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, truth = blobs
    labels = truth.copy()
    labels[:20] = NOISE_LABEL
    distances = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=2)
    assert score_labels(X, labels, distances=distances) == pytest.approx(score_labels(X, labels))


@pytest.mark.parametrize("algorithm", ["kmeans", "gaussian_mixture"])
def test_models_with_predict_reproduce_their_labels(
    blobs: tuple[np.ndarray, np.ndarray], algorithm: str
) -> None:
    X, _ = blobs
    labels = fit_labels(X, algorithm, 3)
    np.testing.assert_array_equal(assign_clusters(X, labels, X, algorithm, 3), labels)


def test_agglomerative_assigns_the_nearest_centroid(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = blobs
    labels = fit_labels(X, "agglomerative", 3)
    centroids = np.array([X[labels == label].mean(axis=0) for label in range(3)])
    new = np.array([[-9.0, -11.0], [-11.0, 9.0], [12.0, 1.0], [0.0, 0.0]])
    expected = np.linalg.norm(new[:, None, :] - centroids[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(assign_clusters(X, labels, new, "agglomerative", 3), expected)


def test_dbscan_assigns_near_core_points_and_leaves_the_far_as_noise(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = blobs
    labels = fit_labels(X, "dbscan", None)
    new = np.vstack([X[:5] + 1e-3, [[100.0, 100.0]]])
    assigned = assign_clusters(X, labels, new, "dbscan", int(labels.max()) + 1)
    core = labels[:5] != NOISE_LABEL
    np.testing.assert_array_equal(assigned[:5][core], labels[:5][core])
    assert assigned[-1] == NOISE_LABEL


def test_neighbours_place_new_customers_among_their_twins(rfm: pd.DataFrame) -> None:
    features = rfm_features(rfm.iloc[:200])
    pipeline = build_pca_pipeline()  # any fitted pipeline with a "scale" step will do
    coordinates = fit_embedding(pipeline, features)
    labels = (coordinates[:, 0] > np.median(coordinates[:, 0])).astype("int64")
    twins = features.iloc[[3, 50, 120]]
    placed, assigned = assign_by_neighbours(
        pipeline, features, coordinates, labels, twins, n_neighbors=5
    )
    np.testing.assert_allclose(placed, coordinates[[3, 50, 120]])
    np.testing.assert_array_equal(assigned, labels[[3, 50, 120]])


def test_pca_stage_assigns_everyone_outside_the_sample(
    rfm: pd.DataFrame, archetypes: pd.DataFrame
) -> None:
    result = run_pca_stage(rfm, archetypes, {"k_range": [2, 5]}, SMALL_SAMPLE)
    embeddings = result.customers
    fit = embeddings["is_fit_sample"].to_numpy()
    assert len(embeddings) == int((~rfm["is_outlier"]).sum())
    assert fit.sum() == 150
    # the assigned customers' coordinates are the fitted pipeline's affine map of their R/F/M
    features = rfm_features(
        embeddings[["customer_id"]].merge(rfm, on="customer_id", validate="one_to_one")
    ).to_numpy()
    design = np.column_stack([features, np.ones(len(features))])
    coefficients, *_ = np.linalg.lstsq(design[fit], embeddings.loc[fit, ["pca_1", "pca_2"]])
    np.testing.assert_allclose(
        design[~fit] @ coefficients, embeddings.loc[~fit, ["pca_1", "pca_2"]], atol=1e-8
    )
    # the names were chosen from the profiles of every clustered customer, fitted or assigned
    profiles = result.profiles
    assert profiles["n_customers"].sum() == len(embeddings)
    sizes = embeddings.groupby("pca_cluster_id").size()
    assert profiles.set_index("cluster_id")["n_customers"].equals(sizes.rename("n_customers"))
    keys = result.keys(pd.Timestamp("2011-12-10"))
    assert (keys["n_customers"], keys["n_fit_sample"]) == (len(embeddings), 150)


def test_both_stages_fit_the_same_sample_and_combine(
    rfm: pd.DataFrame, archetypes: pd.DataFrame
) -> None:
    pca = run_pca_stage(rfm, archetypes, {"k_range": [2, 5]}, SMALL_SAMPLE)
    tsne = run_tsne_stage(rfm, archetypes, SMALL_TSNE, SMALL_SAMPLE)
    combined = combine_stages(pca, tsne)
    assert combined["is_fit_sample"].sum() == 150
    assert combined[["tsne_1", "tsne_2", "tsne_cluster_id"]].notna().all().all()
    # three well separated groups: the assigned customers land with the fitted ones of their group
    group = pd.cut(
        combined.merge(rfm, on="customer_id")["recency_days"], [-1, 80, 240, 1000], labels=False
    )
    purity = pd.crosstab(combined["tsne_cluster_id"], group).max(axis=1).sum() / len(combined)
    assert purity > 0.95
    other_sample = run_tsne_stage(rfm, archetypes, SMALL_TSNE, {**SMALL_SAMPLE, "random_state": 1})
    with pytest.raises(ValueError, match="samples"):
        combine_stages(pca, other_sample)


def test_the_classifier_learns_from_fitted_customers_only(rfm: pd.DataFrame) -> None:
    segments = pd.DataFrame(
        {
            "customer_id": rfm["customer_id"],
            "segment_name": np.where(rfm["recency_days"] < 80, "loyal", "lost"),
            "is_fit_sample": np.arange(len(rfm)) % 3 == 0,
        }
    )
    frame = training_frame(rfm, segments)
    expected = segments.loc[segments["is_fit_sample"], "customer_id"]
    assert frame["customer_id"].tolist() == sorted(expected)
