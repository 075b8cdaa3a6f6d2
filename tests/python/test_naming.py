"""Archetype seed validation and segment naming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retail_segments.clustering import order_clusters, profile_clusters
from retail_segments.naming import (
    ARCHETYPE_COLUMNS,
    LEVEL_COLUMNS,
    base_name,
    cluster_levels,
    inherit_names,
    load_archetypes,
    name_clusters,
)

SEED_FILE = Path(__file__).resolve().parents[2] / "seeds" / "segment_archetypes.csv"
TSNE_NAMES = {"loyal", "promising", "stalled", "at risk", "newcomers", "sleeping", "lost"}


@pytest.fixture(scope="module")
def archetypes() -> pd.DataFrame:
    return load_archetypes(SEED_FILE)


def profiles_from_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """Cluster profiles whose mean R/F/M increase strictly with the given levels."""
    return pd.DataFrame(
        {
            "cluster_id": np.arange(len(levels)),
            "mean_recency_days": 5 + 350 * levels["recency_level"].to_numpy(),
            "mean_frequency": 1 + 20 * levels["frequency_level"].to_numpy(),
            "mean_monetary": 100 + 9000 * levels["monetary_level"].to_numpy(),
        }
    )


def six_shuffled_profiles() -> pd.DataFrame:
    """Six clusters (twice the PCA archetypes) with shuffled mean R, F and M."""
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        {
            "cluster_id": np.arange(6),
            "mean_recency_days": rng.permutation(6) * 50.0,
            "mean_frequency": rng.permutation(6) + 1.0,
            "mean_monetary": rng.permutation(6) * 400.0,
        }
    )


def test_seed_has_the_study_segments(archetypes: pd.DataFrame) -> None:
    assert list(archetypes.columns) == list(ARCHETYPE_COLUMNS)
    by_stage = archetypes.groupby("stage")["segment_name"].apply(set)
    assert by_stage["pca"] == {"loyal", "intermediate", "lost"}
    assert by_stage["tsne"] == TSNE_NAMES
    levels = archetypes[list(LEVEL_COLUMNS)]
    assert levels.ge(0).all().all() and levels.le(1).all().all()
    loyal = archetypes.set_index(["stage", "segment_name"]).loc[("tsne", "loyal")]
    assert loyal["recency_level"] == 0 and loyal["monetary_level"] == 1
    assert archetypes["strategy"].str.len().gt(10).all()


def test_seed_levels_rank_like_distinct_clusters(archetypes: pd.DataFrame) -> None:
    """Within a stage each measure's levels are distinct, so archetypes are distinguishable."""
    for _, group in archetypes.groupby("stage"):
        for column in LEVEL_COLUMNS:
            assert group[column].is_unique, column


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="strategy"), "missing columns"),
        (lambda f: f.assign(recency_level=f["recency_level"] + 0.5), "recency_level"),
        (lambda f: f.assign(stage=f["stage"].replace("pca", "umap")), "unknown stage"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "duplicate"),
        (lambda f: f.assign(segment_name=f["segment_name"].replace("lost", " ")), "segment_name"),
    ],
)
def test_load_archetypes_rejects_bad_files_naming_them(tmp_path: Path, edit, message: str) -> None:
    bad = tmp_path / "bad_archetypes.csv"
    edit(pd.read_csv(SEED_FILE)).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=message) as error:
        load_archetypes(bad)
    assert "bad_archetypes.csv" in str(error.value)


def test_load_archetypes_accepts_a_frame_in_any_order(archetypes: pd.DataFrame) -> None:
    shuffled = pd.read_csv(SEED_FILE).sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(load_archetypes(shuffled), archetypes)


def test_cluster_levels_are_scaled_ranks() -> None:
    profiles = pd.DataFrame(
        {
            "cluster_id": [2, 0, 1],
            "mean_recency_days": [300.0, 10.0, 10.0],
            "mean_frequency": [1.0, 9.0, 4.0],
            "mean_monetary": [50.0, 500.0, 5000.0],
        }
    )
    levels = cluster_levels(profiles)
    assert levels["cluster_id"].tolist() == [0, 1, 2]
    assert levels["recency_level"].tolist() == [0.25, 0.25, 1.0]
    assert levels["frequency_level"].tolist() == [1.0, 0.5, 0.0]
    assert levels["monetary_level"].tolist() == [0.5, 1.0, 0.0]
    single = cluster_levels(profiles.iloc[[0]])
    assert single[list(LEVEL_COLUMNS)].eq(0.5).all().all()


def test_three_obvious_pca_clusters(archetypes: pd.DataFrame) -> None:
    profiles = pd.DataFrame(
        {
            "cluster_id": [0, 1, 2],
            "mean_recency_days": [300.0, 12.0, 95.0],
            "mean_frequency": [1.2, 15.0, 4.0],
            "mean_monetary": [180.0, 6500.0, 1200.0],
        }
    )
    names = name_clusters(profiles, archetypes, stage="pca")
    assert names["segment_name"].tolist() == ["lost", "loyal", "intermediate"]
    assert names["archetype_distance"].eq(0).all()
    strategies = archetypes.set_index(["stage", "segment_name"])["strategy"]
    assert names.at[1, "strategy"] == strategies[("pca", "loyal")]


def test_profiles_built_from_archetypes_get_their_names(archetypes: pd.DataFrame) -> None:
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].sample(frac=1.0, random_state=0)
    profiles = profiles_from_levels(tsne.reset_index(drop=True))
    names = name_clusters(profiles, archetypes, stage="tsne")
    assert names["segment_name"].tolist() == tsne["segment_name"].tolist()


def test_fewer_clusters_than_archetypes_use_a_best_subset(archetypes: pd.DataFrame) -> None:
    tsne = archetypes.set_index(["stage", "segment_name"]).loc["tsne"]
    chosen = tsne.loc[["loyal", "sleeping", "lost"]].reset_index()
    names = name_clusters(profiles_from_levels(chosen), archetypes, stage="tsne")
    assert names["segment_name"].is_unique
    assert set(names["segment_name"]) <= TSNE_NAMES
    assert names.at[0, "segment_name"] == "loyal"
    assert names.at[2, "segment_name"] == "lost"


def test_more_clusters_than_archetypes_get_unique_fallback_names(
    archetypes: pd.DataFrame,
) -> None:
    profiles = six_shuffled_profiles()
    names = name_clusters(profiles, archetypes, stage="pca")
    assert names["segment_name"].is_unique
    plain = names.loc[~names["segment_name"].str.contains(r" \(\d+\)$"), "segment_name"]
    assert sorted(plain) == ["intermediate", "lost", "loyal"]
    fallbacks = names.loc[names["segment_name"].str.contains(r" \(\d+\)$")]
    assert len(fallbacks) == 3
    levels = cluster_levels(profiles).set_index("cluster_id")
    pca = archetypes.loc[archetypes["stage"] == "pca"].set_index("segment_name")
    for _, row in fallbacks.iterrows():
        base = row["segment_name"].rsplit(" (", 1)[0]
        distances = np.linalg.norm(
            pca[list(LEVEL_COLUMNS)].to_numpy() - levels.loc[row["cluster_id"]].to_numpy(), axis=1
        )
        assert base == pca.index[int(np.argmin(distances))]
        assert row["archetype_distance"] == pytest.approx(distances.min())


def test_names_are_stable_under_permutation_of_raw_labels(archetypes: pd.DataFrame) -> None:
    rng = np.random.default_rng(8)
    n = 210
    rfm = pd.DataFrame(
        {
            "customer_id": np.arange(n) + 500,
            "recency_days": rng.integers(0, 365, n),
            "frequency": rng.integers(1, 30, n),
            "monetary": rng.lognormal(6.0, 1.0, n),
        }
    )
    raw = rng.integers(0, 7, n)

    def customer_names(labels: np.ndarray) -> pd.Series:
        ids = order_clusters(labels, rfm)
        names = name_clusters(profile_clusters(rfm, ids, stage="tsne"), archetypes, stage="tsne")
        assert names["segment_name"].is_unique
        return pd.Series(ids).map(names.set_index("cluster_id")["segment_name"])

    reference = customer_names(raw)
    assert set(reference) == TSNE_NAMES
    for seed in range(5):
        permutation = np.random.default_rng(seed).permutation(7) + 3 * seed
        pd.testing.assert_series_equal(customer_names(permutation[raw]), reference)


def test_unknown_stage_has_no_archetypes(archetypes: pd.DataFrame) -> None:
    profiles = pd.DataFrame(
        {
            "cluster_id": [0],
            "mean_recency_days": [1.0],
            "mean_frequency": [1.0],
            "mean_monetary": [1.0],
        }
    )
    with pytest.raises(ValueError, match="no archetypes"):
        name_clusters(profiles, archetypes, stage="umap")


def test_inherit_names_follows_the_majority_of_each_cluster() -> None:
    """Cluster 0 is mostly last model's 'loyal', cluster 1 mostly 'lost'; cluster 2 is split
    between two old segments below the overlap threshold, so it inherits nothing; noise (-1)
    is ignored."""
    cluster_ids = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, -1, -1])
    previous = np.array(
        ["loyal", "loyal", "loyal", "lost", "lost", "lost", "at risk",
         "at risk", "at risk", "sleeping", "sleeping", "loyal", "loyal"]
    )  # fmt: skip
    assert inherit_names(cluster_ids, previous) == {0: "loyal", 1: "lost", 2: "at risk"}
    assert inherit_names(cluster_ids, previous, min_overlap=0.6) == {0: "loyal", 1: "lost"}


def test_inherit_names_gives_each_old_name_to_one_cluster_only() -> None:
    """Two clusters are both mostly 'loyal': the one holding more of them inherits it."""
    cluster_ids = np.array([0, 0, 0, 1, 1, 1, 1])
    previous = np.array(["loyal", "loyal", "lost", "loyal", "loyal", "loyal", "lost"])
    assert inherit_names(cluster_ids, previous) == {1: "loyal"}
    assert inherit_names(np.array([-1, -1]), np.array(["a", "b"])) == {}


@pytest.mark.parametrize(
    ("cluster_ids", "previous", "min_overlap", "message"),
    [
        ([0, 1], ["a"], 0.5, "differ in length"),
        ([0, 1], ["a", "b"], 0.0, "min_overlap"),
        ([0, 1], ["a", "b"], 1.5, "min_overlap"),
    ],
)
def test_inherit_names_rejects_bad_input(cluster_ids, previous, min_overlap, message) -> None:
    with pytest.raises(ValueError, match=message):
        inherit_names(np.array(cluster_ids), np.array(previous), min_overlap=min_overlap)


def test_inherited_names_win_over_archetype_levels(archetypes: pd.DataFrame) -> None:
    """Profiles built from the archetypes would get their own names; inheriting swaps two of
    them and the remaining clusters are named by archetype among the free names."""
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    profiles = profiles_from_levels(tsne)
    plain = name_clusters(profiles, archetypes, stage="tsne")
    assert plain["name_source"].eq("archetype").all()
    first, second = plain.at[0, "segment_name"], plain.at[1, "segment_name"]
    names = name_clusters(
        profiles, archetypes, stage="tsne", inherited={0: second, 1: first}
    ).set_index("cluster_id")
    assert names.loc[0, "segment_name"] == second and names.loc[1, "segment_name"] == first
    assert names.loc[[0, 1], "name_source"].eq("previous_model").all()
    assert names.loc[2:, "name_source"].eq("archetype").all()
    assert names["segment_name"].is_unique
    assert set(names["segment_name"]) == set(tsne["segment_name"])
    strategies = tsne.set_index("segment_name")["strategy"]
    assert names.loc[0, "strategy"] == strategies[second]
    # the distance is to the inherited name's archetype, so it is no longer 0
    assert names.loc[0, "archetype_distance"] > 0


def test_inherited_suffixed_names_keep_their_archetype_and_free_the_base_name(
    archetypes: pd.DataFrame,
) -> None:
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    profiles = profiles_from_levels(tsne)
    names = name_clusters(profiles, archetypes, stage="tsne", inherited={3: "sleeping (2)"})
    assert names.at[3, "segment_name"] == "sleeping (2)"
    assert base_name("sleeping (2)") == "sleeping" and base_name("at risk") == "at risk"
    strategies = tsne.set_index("segment_name")["strategy"]
    assert names.at[3, "strategy"] == strategies["sleeping"]
    assert names["segment_name"].is_unique
    assert len(names) == len(tsne)


def test_a_name_whose_archetype_is_gone_is_not_inherited(archetypes: pd.DataFrame) -> None:
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    profiles = profiles_from_levels(tsne)
    names = name_clusters(profiles, archetypes, stage="tsne", inherited={0: "champions"})
    assert names.at[0, "name_source"] == "archetype"
    assert names.at[0, "segment_name"] == tsne.at[0, "segment_name"]


def test_more_clusters_than_free_names_get_numbered_after_the_inherited_ones(
    archetypes: pd.DataFrame,
) -> None:
    """Six PCA clusters, three archetypes, two names inherited (one a suffixed name): every
    name is unique and suffixes skip the one already taken."""
    profiles = six_shuffled_profiles()
    names = name_clusters(profiles, archetypes, stage="pca", inherited={0: "lost (2)", 1: "loyal"})
    assert names["segment_name"].is_unique
    assert names.at[0, "segment_name"] == "lost (2)" and names.at[1, "segment_name"] == "loyal"
    assert "lost (2)" not in names.loc[2:, "segment_name"].tolist()
    assert names.loc[2:, "name_source"].eq("archetype").all()
