"""Candidate clusterings, selection, stable cluster ids, profiles and the stage entry points."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_info

from retail_segments.ml import classifier, segmentation
from retail_segments.ml.artifacts import RegisteredModel
from retail_segments.ml.clustering import (
    ALGORITHMS,
    NOISE_LABEL,
    PROFILE_COLUMNS,
    SELECTION_COLUMNS,
    dbscan_eps,
    evaluate_candidates,
    order_clusters,
    profile_clusters,
    score_labels,
    select_candidate,
    selected_key,
)
from retail_segments.ml.config import ConfigError, parse_meta
from retail_segments.ml.naming import QUALIFIERS, base_name, load_archetypes, split_name
from retail_segments.ml.results import result_frame
from retail_segments.ml.segmentation import (
    CLUSTER_COLUMNS,
    PcaSettings,
    TsneSettings,
    combine_stages,
    fit_pca_stage,
    run_pca_stage,
    run_tsne_stage,
)

SEED_FILE = Path(__file__).resolve().parents[2] / "seeds" / "segment_archetypes.csv"


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(
        n_samples=400,
        centers=[[-10, -10], [-10, 10], [10, -10], [10, 10]],
        cluster_std=1.0,
        random_state=0,
    )


@pytest.fixture(scope="module")
def rfm() -> pd.DataFrame:
    """Three obvious groups (recent big spenders, middling, long-lost) plus a few outliers."""
    rng = np.random.default_rng(11)
    groups = [(15, 12, 4000.0), (150, 4, 900.0), (320, 1, 150.0)]
    rows = []
    for recency, frequency, monetary in groups:
        for _ in range(50):
            rows.append(
                (
                    max(0, int(rng.normal(recency, 8))),
                    max(1, int(rng.normal(frequency, 1))),
                    float(rng.normal(monetary, monetary / 10)),
                    False,
                )
            )
    rows += [(1, 200, 250000.0, True), (3, 150, 180000.0, True)]
    frame = pd.DataFrame(rows, columns=["recency_days", "frequency", "monetary", "is_outlier"])
    frame.insert(0, "customer_id", rng.permutation(np.arange(10000, 10000 + len(frame))))
    return frame.astype({"recency_days": "int64", "frequency": "int64"})


@pytest.fixture(scope="module")
def archetypes() -> pd.DataFrame:
    return load_archetypes(SEED_FILE)


def test_selection_finds_the_four_blobs(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, truth = blobs
    k_range = range(2, 9)
    scores, labels = evaluate_candidates(
        X,
        stage="pca",
        k_values={"kmeans": k_range, "gaussian_mixture": k_range, "agglomerative": k_range},
    )
    selection = select_candidate(scores)

    assert set(selection["algorithm"]) == set(ALGORITHMS)
    assert selection["is_selected"].sum() == 1
    chosen = selection.loc[selection["is_selected"]].iloc[0]
    assert chosen["n_clusters"] == 4
    assert chosen["selection_reason"] == "highest silhouette"
    assert chosen["silhouette"] == selection["silhouette"].max()
    found = labels[selected_key(selection)]
    clustered = found != NOISE_LABEL
    assert clustered.mean() > 0.9
    assert pd.crosstab(found[clustered], truth[clustered]).gt(0).sum(axis=1).eq(1).all()


def test_every_kbased_algorithm_scores_best_at_four(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = blobs
    k_range = range(2, 9)
    scores, _ = evaluate_candidates(
        X, stage="tsne", k_values={name: k_range for name in ALGORITHMS[:3]}, include_dbscan=False
    )
    assert "dbscan" not in set(scores["algorithm"])
    for algorithm, group in scores.groupby("algorithm"):
        best = group.loc[group["silhouette"].idxmax()]
        assert best["n_clusters"] == 4, algorithm
        assert group["calinski_harabasz"].idxmax() == best.name
        assert group["davies_bouldin"].idxmin() == best.name


def test_pins_override_the_silhouette_choice(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = blobs
    scores, _ = evaluate_candidates(
        X, stage="pca", k_values={"kmeans": range(2, 7), "agglomerative": range(2, 7)}
    )
    both = select_candidate(scores, "agglomerative", 3)
    chosen = both.loc[both["is_selected"]].iloc[0]
    assert (chosen["algorithm"], chosen["n_clusters"]) == ("agglomerative", 3)
    assert chosen["selection_reason"] == "pinned by config"

    only_k = select_candidate(scores, n_clusters=5)
    chosen = only_k.loc[only_k["is_selected"]].iloc[0]
    at_five = scores.loc[scores["n_clusters"] == 5, "silhouette"]
    assert chosen["n_clusters"] == 5
    assert chosen["silhouette"] == at_five.max()
    assert chosen["selection_reason"].startswith("n_clusters pinned")

    only_algorithm = select_candidate(scores, algorithm="agglomerative")
    chosen = only_algorithm.loc[only_algorithm["is_selected"]].iloc[0]
    assert (chosen["algorithm"], chosen["n_clusters"]) == ("agglomerative", 4)
    excluded = only_algorithm.loc[only_algorithm["algorithm"] == "kmeans", "selection_reason"]
    assert (excluded == "excluded by pinned config").all()


def test_select_candidate_rules_on_a_hand_made_table() -> None:
    scores = pd.DataFrame(
        {
            "stage": "pca",
            "algorithm": ["dbscan", "agglomerative", "kmeans", "kmeans", "gaussian_mixture"],
            "n_clusters": [40, 3, 3, 2, 2],
            "silhouette": [0.9, 0.6, 0.6, np.nan, 0.5],
            "calinski_harabasz": 1.0,
            "davies_bouldin": 1.0,
        }
    )
    selection = select_candidate(scores, k_bounds=(2, 10))

    assert list(selection.columns) == list(SELECTION_COLUMNS)
    assert selection["algorithm"].tolist() == [
        "kmeans",
        "kmeans",
        "gaussian_mixture",
        "agglomerative",
        "dbscan",
    ]
    chosen = selection.loc[selection["is_selected"]]
    assert chosen[["algorithm", "n_clusters"]].values.tolist() == [["kmeans", 3]]
    reasons = dict(
        zip(
            selection["algorithm"] + selection["n_clusters"].astype(str),
            selection["selection_reason"],
            strict=True,
        )
    )
    assert reasons["kmeans2"].startswith("not scored")
    assert reasons["dbscan40"] == "n_clusters outside the configured k range"
    assert select_candidate(scores).loc[lambda t: t["is_selected"], "algorithm"].item() == "dbscan"
    with pytest.raises(ValueError, match="no scorable"):
        select_candidate(scores, "kmeans", 2)
    with pytest.raises(ValueError, match="unknown pinned algorithm"):
        select_candidate(scores, "spectral")


def test_score_labels_ignores_noise_and_needs_two_clusters(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, truth = blobs
    with_noise = truth.copy()
    with_noise[:25] = NOISE_LABEL
    expected = score_labels(X[25:], truth[25:])
    assert score_labels(X, with_noise) == pytest.approx(expected)
    assert np.isnan(score_labels(X, np.zeros(len(X), dtype="int64"))).all()
    assert np.isnan(score_labels(X, np.full(len(X), NOISE_LABEL))).all()


def test_dbscan_eps_makes_the_requested_share_of_core_points(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = blobs
    eps = dbscan_eps(X, min_samples=4, core_fraction=0.8)
    distances, _ = NearestNeighbors(n_neighbors=4).fit(X).kneighbors(X)
    core_share = float(np.mean(distances[:, -1] <= eps))
    assert 0.8 <= core_share <= 0.8 + 2 / len(X)
    assert dbscan_eps(X, min_samples=4, core_fraction=0.9) > eps


def test_order_clusters_follows_the_documented_rule(rfm: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 4, len(rfm))
    raw[:3] = NOISE_LABEL
    ids = order_clusters(raw, rfm)

    assert (ids[:3] == NOISE_LABEL).all()
    kept = rfm.assign(cluster_id=ids).loc[lambda f: f["cluster_id"] != NOISE_LABEL]
    assert sorted(kept["cluster_id"].unique()) == list(range(len(np.unique(raw[3:]))))
    means = kept.groupby("cluster_id")["monetary"].mean()
    assert means.is_monotonic_decreasing
    for relabel in (lambda x: 10 - x, lambda x: (x + 2) % 4, lambda x: 7 * x + 3):
        relabelled = np.where(raw == NOISE_LABEL, NOISE_LABEL, relabel(raw))
        np.testing.assert_array_equal(order_clusters(relabelled, rfm), ids)


def test_order_clusters_breaks_ties_by_recency_then_frequency() -> None:
    rfm = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6],
            "recency_days": [90, 90, 10, 10, 10, 10],
            "frequency": [3, 3, 1, 1, 5, 5],
            "monetary": [100.0, 100.0, 100.0, 100.0, 100.0, 100.0],
        }
    )
    ids = order_clusters(np.array([7, 7, 8, 8, 9, 9]), rfm)
    assert ids.tolist() == [2, 2, 1, 1, 0, 0]


def test_profiles_match_a_direct_computation(rfm: pd.DataFrame) -> None:
    ids = np.arange(len(rfm)) % 3
    ids[-1] = NOISE_LABEL
    profiles = profile_clusters(rfm, ids, stage="pca")
    clustered = rfm.assign(cluster_id=ids).loc[lambda f: f["cluster_id"] >= 0]

    assert profiles["cluster_id"].tolist() == [0, 1, 2]
    assert profiles["n_customers"].sum() == len(rfm) - 1
    assert profiles["revenue_share"].sum() == pytest.approx(1.0)
    one = clustered.loc[clustered["cluster_id"] == 1]
    row = profiles.set_index("cluster_id").loc[1]
    assert row["median_recency_days"] == one["recency_days"].median()
    assert row["mean_monetary"] == pytest.approx(one["monetary"].mean())
    assert row["revenue_share"] == pytest.approx(
        one["monetary"].sum() / clustered["monetary"].sum()
    )


def test_pca_stage_contract_and_determinism(rfm: pd.DataFrame, archetypes: pd.DataFrame) -> None:
    first = run_pca_stage(rfm, archetypes)
    second = run_pca_stage(rfm.sample(frac=1.0, random_state=1), archetypes)

    for name in ("customers", "candidates", "embedding_summary", "clusters", "profiles"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    selection = first.candidates
    assert selection["is_selected"].sum() == 1
    customers = first.customers
    assert customers["customer_id"].tolist() == sorted(rfm.loc[~rfm["is_outlier"], "customer_id"])
    clusters = first.clusters
    assert list(clusters.columns) == list(CLUSTER_COLUMNS)
    assert list(first.profiles.columns) == list(PROFILE_COLUMNS)
    assert first.profiles["cluster_id"].tolist() == clusters["cluster_id"].tolist()
    assert selected_key(selection)[1] == len(clusters) == 3
    assert clusters["segment_name"].tolist() == ["loyal", "intermediate", "lost"]
    assert clusters["strategy"].str.len().gt(0).all()
    pca_archetypes = archetypes.loc[archetypes["stage"] == "pca"].set_index("segment_name")
    assert (
        clusters["meaning"].tolist()
        == pca_archetypes.loc[clusters["segment_name"], "meaning"].tolist()
    )
    names = clusters.set_index("cluster_id")["segment_name"]
    assert customers["pca_segment_name"].tolist() == names[customers["pca_cluster_id"]].tolist()
    assert len(first.embedding_summary) == 2


def test_a_stage_fit_is_one_keyed_row_with_its_results(
    rfm: pd.DataFrame, archetypes: pd.DataFrame
) -> None:
    """The record a dbt model returns: the keys, then the result tables unchanged and typed."""
    fit = run_pca_stage(rfm, archetypes)
    as_of = pd.Timestamp("2011-12-10")
    record = fit.record(as_of)

    assert record.num_rows == 1
    assert record.column_names == [
        "stage",
        "rfm_as_of",
        "n_customers",
        "n_fit_sample",
        "algorithm",
        "n_clusters",
        "customers",
        "candidates",
        "embedding_summary",
        "clusters",
    ]
    keys = record.select(record.column_names[:6]).to_pylist()[0]
    algorithm, n_clusters = selected_key(fit.candidates)
    assert keys == {
        "stage": "pca",
        "rfm_as_of": as_of.to_pydatetime(),
        "n_customers": len(fit.customers),
        "n_fit_sample": len(fit.customers),
        "algorithm": algorithm,
        "n_clusters": n_clusters,
    }
    pd.testing.assert_frame_equal(result_frame(record, "customers"), fit.customers)
    pd.testing.assert_frame_equal(result_frame(record, "clusters"), fit.clusters)
    # a name that is missing on every cluster still has the text type the contract declares
    assert str(
        record.schema.field("clusters").type.value_type.field("previous_model_version").type
    ) in (
        "string",
        "large_string",
    )


def test_the_pca_fit_reads_the_model_inputs_and_meta(
    rfm: pd.DataFrame, archetypes: pd.DataFrame
) -> None:
    """fit_pca_stage takes the frames the dbt model reads (the seed unvalidated, the as-of in
    customer_rfm) and the meta block; a mistyped meta key is refused with its full name."""
    seed = pd.read_csv(SEED_FILE)
    with_as_of = rfm.assign(rfm_as_of=pd.Timestamp("2011-12-10"))
    record = fit_pca_stage(with_as_of, seed, {"pca": {"algorithm": "kmeans", "n_clusters": 4}})
    assert record.column("n_clusters").to_pylist() == [4]
    assert len(result_frame(record, "clusters")) == 4
    with pytest.raises(
        ConfigError, match=r"ml_segmentation_pca_fit\.meta\.pca: unknown key 'n_cluster'"
    ):
        fit_pca_stage(with_as_of, seed, {"pca": {"n_cluster": 4}})
    with pytest.raises(
        ConfigError, match=r"ml_segmentation_pca_fit\.meta: unknown key\(s\) \['pcaa'\]"
    ):
        fit_pca_stage(with_as_of, seed, {"pcaa": {}})
    with pytest.raises(ConfigError, match=r"ml_segmentation_pca_fit\.meta\.sampling = 5"):
        fit_pca_stage(with_as_of, seed, {"sampling": 5})
    with pytest.raises(ValueError, match="rfm_as_of"):
        fit_pca_stage(rfm, seed)


def test_pca_stage_honours_a_pinned_choice(rfm: pd.DataFrame, archetypes: pd.DataFrame) -> None:
    result = run_pca_stage(rfm, archetypes, {"algorithm": "kmeans", "n_clusters": 5})
    assert selected_key(result.candidates) == ("kmeans", 5)
    assert len(result.clusters) == 5
    names = result.clusters["segment_name"]
    assert names.is_unique and not names.str.contains(r"\d").any()
    assert set(names.map(base_name)) == {"loyal", "intermediate", "lost"}


def test_tsne_stage_and_combined_tables(rfm: pd.DataFrame, archetypes: pd.DataFrame) -> None:
    config = {"perplexity": 30.0, "k_range": [3, 5], "agglomerative_k_range": [2, 5]}
    tsne = run_tsne_stage(rfm, archetypes, config)
    pca = run_pca_stage(rfm, archetypes, {"k_range": [2, 5], "agglomerative_k_range": [2, 5]})
    combined = combine_stages(pca, tsne)

    selection = tsne.candidates
    assert selection["n_clusters"].loc[selection["algorithm"] != "dbscan"].between(2, 5).all()
    assert tsne.embedding_summary["kl_divergence"].notna().all()
    assert list(combined.columns[:7]) == [
        "customer_id",
        "pca_1",
        "pca_2",
        "tsne_1",
        "tsne_2",
        "pca_cluster_id",
        "tsne_cluster_id",
    ]
    assert len(combined) == int((~rfm["is_outlier"]).sum())
    assert tsne.record(pd.Timestamp("2011-12-10")).column("previous_model_version").to_pylist() == [
        None
    ]
    tsne_names = set(tsne.clusters["segment_name"].map(base_name))
    assert tsne_names <= set(archetypes.loc[archetypes["stage"] == "tsne", "segment_name"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"n_cluster": 3}, "unknown key 'n_cluster'"),
        ({"algorithm": "spectral"}, "key 'algorithm' = 'spectral'"),
        ({"n_clusters": 1}, "key 'n_clusters"),
        ({"k_range": [5, 3]}, "key 'k_range' = \\[5, 3\\]: must be \\[k_min, k_max\\]"),
        ({"k_range": [1, 4]}, "key 'k_range'"),
        ({"dbscan_core_fraction": 1.5}, "key 'dbscan_core_fraction'"),
        ({"include_dbscan": "yes"}, "key 'include_dbscan'"),
        ({"perplexity": 50.0}, "unknown key 'perplexity'"),
        ({"max_threads": 0}, "key 'max_threads"),
    ],
)
def test_pca_settings_validation(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PcaSettings.parse(config, name="ml_segmentation_pca_fit.meta.pca")


def test_tsne_settings_defaults_and_validation() -> None:
    defaults = TsneSettings.parse(None, name="tsne")
    assert (defaults.perplexity, defaults.embedding_random_state) == (50.0, 100)
    assert defaults.k_range == (3, 8)
    assert (defaults.max_threads, defaults.embedding_max_threads) == (1, 2)
    assert TsneSettings.parse({"perplexity": 30}, name="tsne").perplexity == 30
    with pytest.raises(ConfigError, match="perplexity"):
        TsneSettings.parse({"perplexity": -1}, name="tsne")
    assert PcaSettings.parse({}, name="pca").k_range == (2, 10)
    # the algorithm choices are the clustering module's
    pinned, _ = typing.get_args(PcaSettings.model_fields["algorithm"].annotation)
    assert typing.get_args(pinned) == ALGORITHMS
    for settings in (PcaSettings, TsneSettings):
        assert all(field.description for field in settings.model_fields.values())


class _RecencyBands:
    """Stand-in for last month's registered classifier: names by recency band, deliberately not
    the names the archetypes would give (by default the recent big spenders are called 'lost')."""

    def __init__(self, names: tuple[str, str, str] = ("lost", "loyal", "promising")) -> None:
        self.names = list(names)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        recency = features["recency_days"].to_numpy()
        return np.select([recency < 80, recency < 250], self.names[:2], self.names[2])


@pytest.mark.parametrize(
    "band_names",
    [("lost", "loyal", "promising"), ("sleeping, longer gone", "loyal", "at risk, one order")],
    ids=["plain", "qualified"],
)
def test_tsne_clusters_inherit_the_previous_models_names(
    rfm: pd.DataFrame, archetypes: pd.DataFrame, band_names: tuple[str, str, str]
) -> None:
    """With a previous model, each cluster takes the name it predicts for most of the
    cluster's customers, even against the archetype levels, and says where the name came from;
    without one, the same clustering is named by archetype. Qualified names (an earlier fit's
    extra clusters) are inherited whole, with the qualifier's advice in the strategy."""
    config = {"perplexity": 30.0, "algorithm": "kmeans", "n_clusters": 3}
    previous = RegisteredModel("v-last-month", _RecencyBands(band_names))
    plain_fit = run_tsne_stage(rfm, archetypes, config)
    inherited_fit = run_tsne_stage(rfm, archetypes, config, previous=previous)
    plain = plain_fit.clusters.merge(plain_fit.profiles, on=["stage", "cluster_id"])
    inherited = inherited_fit.clusters.merge(inherited_fit.profiles, on=["stage", "cluster_id"])
    assert inherited_fit.previous_model_version == "v-last-month"

    assert plain["name_source"].eq("archetype").all()
    assert plain["previous_model_version"].isna().all()
    by_recency = inherited.sort_values("mean_recency_days")
    assert by_recency["segment_name"].tolist() == list(band_names)
    assert by_recency["name_source"].eq("previous_model").all()
    assert by_recency["previous_model_version"].eq("v-last-month").all()
    assert plain.set_index("cluster_id")["segment_name"].to_dict() != (
        inherited.set_index("cluster_id")["segment_name"].to_dict()
    )
    strategies = archetypes.loc[archetypes["stage"] == "tsne"].set_index("segment_name")["strategy"]
    for name, strategy in zip(by_recency["segment_name"], by_recency["strategy"], strict=True):
        base, qualifiers = split_name(name)
        advice = [QUALIFIERS[qualifier].advice for qualifier in qualifiers]
        assert strategy == " ".join([strategies[base], *advice])
    # the clustering itself is the same: only the names differ
    columns = ["cluster_id", "n_customers", "mean_recency_days"]
    pd.testing.assert_frame_equal(plain[columns], inherited[columns])


def test_the_yml_meta_blocks_are_valid_settings() -> None:
    """The meta blocks the project ships validate against the modules' SETTINGS."""
    models = {}
    for feature in ("segmentation", "classifier"):
        path = SEED_FILE.parents[1] / "models" / "ml" / feature / f"_{feature}__models.yml"
        models.update(
            {model["name"]: model for model in yaml.safe_load(path.read_text())["models"]}
        )
    expected = {
        "ml_segmentation_pca_fit": {"pca", "sampling"},
        "ml_segmentation_tsne_fit": {"tsne", "sampling"},
        "ml_segment_classifier_fit": {"classifier"},
    }
    for name, keys in expected.items():
        meta = models[name]["config"]["meta"]
        assert set(meta) == keys, name
        settings = {**segmentation.SETTINGS, **classifier.SETTINGS}
        parsed = parse_meta(meta, {key: settings[key] for key in keys}, model=name)
        assert set(parsed) == keys


def test_blas_runs_on_one_thread_and_a_fit_sets_only_its_openmp_threads(
    rfm: pd.DataFrame, archetypes: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt runs the Python models on threads of one process. OpenBLAS's thread pool is the
    process's, and threadpoolctl lets only the first thread that sizes it do so, so t-SNE's two
    threads reached another model's KMeans, whose result depends on them. BLAS runs on one
    thread for the process, and the t-SNE stage sets only its own OpenMP threads."""

    def threads(api: str) -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == api}

    assert threads("blas") == {1}
    seen = []
    embed = segmentation.fit_embedding

    def watched(pipeline: object, features: pd.DataFrame) -> np.ndarray:
        seen.append((threads("blas"), threads("openmp")))
        return embed(pipeline, features)

    monkeypatch.setattr(segmentation, "fit_embedding", watched)
    run_tsne_stage(rfm, archetypes, {"embedding_max_threads": 2, "max_threads": 1})
    assert seen == [({1}, {2})]
    assert threads("blas") == {1}
