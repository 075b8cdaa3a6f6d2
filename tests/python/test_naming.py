"""Archetype seed validation and segment naming, including the study's two published profile
tables and the real file's default build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retail_segments.ml.clustering import order_clusters, profile_clusters
from retail_segments.ml.naming import (
    ARCHETYPE_COLUMNS,
    LEVEL_COLUMNS,
    QUALIFIERS,
    base_name,
    cluster_levels,
    inherit_names,
    load_archetypes,
    name_clusters,
    split_name,
)

SEED_FILE = Path(__file__).resolve().parents[2] / "seeds" / "segment_archetypes.csv"
TSNE_NAMES = {"loyal", "promising", "stalled", "at risk", "newcomers", "sleeping", "lost"}
PROFILE_MEANS = ["n_customers", "mean_recency_days", "mean_frequency", "mean_monetary"]

# The study's seven t-SNE segments (issue 12): name, size, mean recency days, mean orders, mean
# spend in GBP, for its reference solution (agglomerative, k=7) and for scikit-learn 1.2-1.3
# (KMeans, k=7).
STUDY_REFERENCE = [
    ("loyal", 904, 33.0, 7.0, 2418.0),
    ("promising", 719, 44.0, 3.0, 967.0),
    ("stalled", 508, 38.0, 2.0, 547.0),
    ("at risk", 725, 169.0, 2.0, 546.0),
    ("newcomers", 651, 46.0, 1.0, 331.0),
    ("sleeping", 423, 283.0, 1.0, 351.0),
    ("lost", 114, 365.0, 1.0, 236.0),
]
STUDY_KMEANS = [
    ("loyal", 914, 32.4, 6.77, 2417.0),
    ("promising", 683, 40.2, 3.45, 995.0),
    ("stalled", 543, 40.0, 1.98, 614.0),
    ("at risk", 446, 195.8, 2.44, 670.0),
    ("newcomers", 656, 46.3, 1.00, 322.0),
    ("sleeping", 405, 181.4, 1.00, 273.0),
    ("lost", 397, 313.0, 1.01, 261.0),
]
# The default build on the real file (main 8b413e8, as of 2011-12-10): agglomerative, k=8, from
# ml.cluster_profiles (stage tsne), with the name this naming rule gives each cluster. Two
# clusters bought once and are gone for months: 162 days (the study's KMeans "sleeping") and 282
# days (the reference's "sleeping"); the second is gone longer than the first.
REAL_DEFAULT_TSNE = [
    ("loyal", 903, 32.633, 6.804, 2419.715),
    ("promising", 633, 36.341, 3.532, 973.016),
    ("stalled", 570, 42.002, 1.963, 681.170),
    ("at risk", 409, 167.914, 2.555, 665.373),
    ("sleeping, longer gone", 446, 281.892, 1.211, 363.530),
    ("newcomers", 647, 45.654, 1.000, 324.384),
    ("sleeping", 322, 162.165, 1.000, 266.493),
    ("lost", 114, 365.456, 1.044, 235.532),
]
REAL_DEFAULT_PCA = [
    ("loyal", 776, 31.943, 7.068, 2657.747),
    ("intermediate", 2267, 51.127, 2.329, 660.169),
    ("lost", 1001, 253.284, 1.406, 386.598),
]


@pytest.fixture(scope="module")
def archetypes() -> pd.DataFrame:
    return load_archetypes(SEED_FILE)


def study_profiles(table: list[tuple], cluster_ids: np.ndarray | None = None) -> pd.DataFrame:
    """A profile frame (as ``profile_clusters`` returns, means only) from a table of
    ``(name, size, recency, orders, spend)``; cluster ids 0..k-1 in table order unless given.
    The study's name is kept in column ``expected`` (the naming code never sees it)."""
    frame = pd.DataFrame(table, columns=["expected", *PROFILE_MEANS])
    frame.insert(0, "cluster_id", np.arange(len(frame)) if cluster_ids is None else cluster_ids)
    return frame


def named(profiles: pd.DataFrame, archetypes: pd.DataFrame, stage: str = "tsne") -> pd.DataFrame:
    """Name the clusters from the profile means only and join the names back to the rows."""
    names = name_clusters(
        profiles.drop(columns="expected", errors="ignore"), archetypes, stage=stage
    )
    return profiles.merge(names, on="cluster_id", how="left", validate="one_to_one")


def profiles_from_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """Cluster profiles whose levels (``cluster_levels``) are the given ones, provided each level
    column holds a 0 and a 1: recency linear in 5..355 days, orders and spend log-linear in
    1..21 orders and 100..9100 GBP (the inverse of ``log(1 + mean)`` min-max scaling)."""

    def log_scale(level: np.ndarray, low: float, high: float) -> np.ndarray:
        return np.expm1(np.log1p(low) + level * (np.log1p(high) - np.log1p(low)))

    return pd.DataFrame(
        {
            "cluster_id": np.arange(len(levels)),
            "mean_recency_days": 5 + 350 * levels["recency_level"].to_numpy(),
            "mean_frequency": log_scale(levels["frequency_level"].to_numpy(), 1, 21),
            "mean_monetary": log_scale(levels["monetary_level"].to_numpy(), 100, 9100),
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


def one_archetype(name: str = "everyone") -> pd.DataFrame:
    """A stage with a single archetype at the lowest levels, for tests of the qualifiers."""
    return load_archetypes(
        pd.DataFrame(
            {
                "stage": ["pca"],
                "segment_name": [name],
                "recency_level": [0.0],
                "frequency_level": [0.0],
                "monetary_level": [0.0],
                "meaning": ["All customers."],
                "strategy": ["Send the newsletter."],
            }
        )
    )


def assert_descriptive(names: pd.Series, archetypes: pd.DataFrame, stage: str) -> None:
    """Unique, never a number, and every name an archetype of the stage with known qualifiers."""
    assert names.is_unique
    assert not names.str.contains(r"\d").any()
    stage_names = set(archetypes.loc[archetypes["stage"] == stage, "segment_name"])
    for name in names:
        base, qualifiers = split_name(name)
        assert base in stage_names, name
        assert set(qualifiers) <= set(QUALIFIERS), name


def test_seed_has_the_study_segments(archetypes: pd.DataFrame) -> None:
    assert list(archetypes.columns) == list(ARCHETYPE_COLUMNS)
    by_stage = archetypes.groupby("stage")["segment_name"].apply(set)
    assert by_stage["pca"] == {"loyal", "intermediate", "lost"}
    assert by_stage["tsne"] == TSNE_NAMES
    levels = archetypes[list(LEVEL_COLUMNS)]
    assert levels.ge(0).all().all() and levels.le(1).all().all()
    assert archetypes["strategy"].str.len().gt(10).all()
    assert archetypes["meaning"].str.len().gt(10).all()
    assert archetypes.groupby("stage")["meaning"].apply(lambda m: m.is_unique).all()


def test_seed_levels_hold_the_study_readings(archetypes: pd.DataFrame) -> None:
    """The study's readings, as relations between the archetypes' levels."""
    for stage in ("pca", "tsne"):
        stage_levels = archetypes.loc[archetypes["stage"] == stage].set_index("segment_name")
        loyal, lost = stage_levels.loc["loyal"], stage_levels.loc["lost"]
        # loyal: the most recent, most orders, most spend; lost: the longest gone, the least
        assert (loyal["recency_level"], loyal["frequency_level"], loyal["monetary_level"]) == (
            0,
            1,
            1,
        )
        assert lost["recency_level"] == 1 == stage_levels["recency_level"].max()
        assert lost["monetary_level"] == 0 == stage_levels["monetary_level"].min()
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].set_index("segment_name")
    recency, orders, spend = (tsne[column] for column in LEVEL_COLUMNS)
    recent = ["loyal", "promising", "stalled", "newcomers"]
    gone_for_months = ["at risk", "sleeping"]
    # promising buys more often and spends more than stalled, both recent
    assert orders["promising"] > orders["stalled"] and spend["promising"] > spend["stalled"]
    assert recency[recent].max() < recency[gone_for_months].min()
    # at risk are repeat buyers gone for months, sleeping bought once and gone for months
    assert orders["at risk"] >= orders["stalled"] > 0
    assert orders["sleeping"] == orders["newcomers"] == orders["lost"] == 0
    # lost are the longest gone
    assert recency["lost"] > recency[gone_for_months].max()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="strategy"), "missing columns"),
        (lambda f: f.drop(columns="meaning"), "missing columns"),
        (lambda f: f.assign(recency_level=f["recency_level"] + 0.5), "recency_level"),
        (lambda f: f.assign(stage=f["stage"].replace("pca", "umap")), "unknown stage"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "duplicate"),
        (lambda f: f.assign(segment_name=f["segment_name"].replace("lost", " ")), "segment_name"),
        (lambda f: f.assign(meaning=f["meaning"].where(f.index != 2)), "meaning"),
        (lambda f: f.assign(segment_name=f["segment_name"].replace("lost", "lost, old")), "','"),
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


def test_cluster_levels_are_min_max_positions() -> None:
    """Recency linear in days, orders and spend on log(1 + mean) with negative means as 0; a
    measure equal in every cluster (and a single cluster) gives 0.5."""
    profiles = pd.DataFrame(
        {
            "cluster_id": [2, 0, 1],
            "mean_recency_days": [300.0, 10.0, 155.0],
            "mean_frequency": [1.0, 7.0, np.sqrt(2 * 8) - 1],  # log(1 + f) halfway: sqrt(2 * 8)
            "mean_monetary": [-50.0, 0.0, 99.0],
        }
    )
    levels = cluster_levels(profiles)
    assert levels["cluster_id"].tolist() == [0, 1, 2]
    assert levels["recency_level"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert levels["frequency_level"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert levels["monetary_level"].tolist() == pytest.approx([0.0, 1.0, 0.0])
    equal = cluster_levels(profiles.assign(mean_frequency=3.0))
    assert equal["frequency_level"].eq(0.5).all()
    single = cluster_levels(profiles.iloc[[0]])
    assert single[list(LEVEL_COLUMNS)].eq(0.5).all().all()


@pytest.mark.parametrize("table", [STUDY_REFERENCE, STUDY_KMEANS], ids=["reference", "kmeans"])
def test_the_study_profiles_get_the_study_names(
    table: list[tuple], archetypes: pd.DataFrame
) -> None:
    result = named(study_profiles(table), archetypes)
    assert result["segment_name"].tolist() == result["expected"].tolist()
    assert result["name_source"].eq("archetype").all()
    seed = archetypes.loc[archetypes["stage"] == "tsne"].set_index("segment_name")
    for column in ("strategy", "meaning"):
        assert result[column].tolist() == seed.loc[result["expected"], column].tolist()


@pytest.mark.parametrize("table", [STUDY_REFERENCE, STUDY_KMEANS], ids=["reference", "kmeans"])
def test_the_study_names_do_not_depend_on_cluster_ids_or_row_order(
    table: list[tuple], archetypes: pd.DataFrame
) -> None:
    for seed in range(6):
        rng = np.random.default_rng(seed)
        ids = rng.permutation(len(table)) + 10 * seed
        profiles = study_profiles(table, ids).sample(frac=1.0, random_state=seed)
        result = named(profiles, archetypes)
        assert result["segment_name"].tolist() == result["expected"].tolist(), seed


def test_the_real_default_build_eight_clusters_get_descriptive_names(
    archetypes: pd.DataFrame,
) -> None:
    """Eight clusters for seven archetypes: the extra one-order lapsed cluster is named after
    'sleeping' with what sets it apart from the cluster called 'sleeping' (gone longer), never a
    number, and its strategy adds the qualifier's advice to the archetype's."""
    result = named(study_profiles(REAL_DEFAULT_TSNE), archetypes)
    assert result["segment_name"].tolist() == result["expected"].tolist()
    assert_descriptive(result["segment_name"], archetypes, "tsne")
    by_name = result.set_index("segment_name")
    longer_gone, sleeping = by_name.loc["sleeping, longer gone"], by_name.loc["sleeping"]
    assert longer_gone["mean_recency_days"] > sleeping["mean_recency_days"] + 90
    assert longer_gone["strategy"] == (
        sleeping["strategy"] + " " + QUALIFIERS["longer gone"].advice
    )
    assert longer_gone["meaning"] == (
        sleeping["meaning"] + " Unlike the 'sleeping' segment, they have been gone longer."
    )
    pca = named(study_profiles(REAL_DEFAULT_PCA), archetypes, stage="pca")
    assert pca["segment_name"].tolist() == pca["expected"].tolist()


def test_a_study_cluster_split_in_two_gets_a_qualified_name(archetypes: pd.DataFrame) -> None:
    """The reference's 'lost' split into a cheaper half and one spending more: the cheaper half
    keeps 'lost' (the archetype spends least), the other is 'lost, higher spend'."""
    split = [row for row in STUDY_REFERENCE if row[0] != "lost"] + [
        ("lost", 60, 366.0, 1.0, 150.0),
        ("lost, higher spend", 54, 362.0, 1.1, 330.0),
    ]
    result = named(study_profiles(split), archetypes)
    assert result["segment_name"].tolist() == result["expected"].tolist()
    assert_descriptive(result["segment_name"], archetypes, "tsne")


def test_an_extra_lapsed_cluster_of_one_order_buyers_is_at_risk_one_order(
    archetypes: pd.DataFrame,
) -> None:
    """Seven clusters exactly at the archetypes plus one gone as long as 'at risk' and spending
    as much, but (on average) with a single order: 'at risk, one order'."""
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    extra = pd.DataFrame(
        {"recency_level": [0.5], "frequency_level": [0.05], "monetary_level": [0.45]}
    )
    profiles = profiles_from_levels(pd.concat([tsne, extra], ignore_index=True))
    result = name_clusters(profiles, archetypes, stage="tsne")
    assert result["segment_name"].tolist() == [*tsne["segment_name"], "at risk, one order"]
    at_risk_row = int(tsne.index[tsne["segment_name"] == "at risk"][0])
    assert profiles.at[7, "mean_frequency"] < 1.5 <= profiles.at[at_risk_row, "mean_frequency"]
    at_risk = tsne.set_index("segment_name").loc["at risk"]
    assert result.at[7, "strategy"] == at_risk["strategy"] + " " + QUALIFIERS["one order"].advice
    assert "bought only once" in result.at[7, "meaning"]


def test_profiles_built_from_archetypes_get_their_names(archetypes: pd.DataFrame) -> None:
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].sample(frac=1.0, random_state=0)
    profiles = profiles_from_levels(tsne.reset_index(drop=True))
    names = name_clusters(profiles, archetypes, stage="tsne")
    assert names["segment_name"].tolist() == tsne["segment_name"].tolist()
    assert names["archetype_distance"].tolist() == pytest.approx([0.0] * len(tsne), abs=1e-12)


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
    assert names.loc[[0, 1], "archetype_distance"].eq(0).all()  # the extremes are the archetypes
    strategies = archetypes.set_index(["stage", "segment_name"])["strategy"]
    assert names.at[1, "strategy"] == strategies[("pca", "loyal")]


def test_fewer_clusters_than_archetypes_use_a_best_subset(archetypes: pd.DataFrame) -> None:
    tsne = archetypes.set_index(["stage", "segment_name"]).loc["tsne"]
    chosen = tsne.loc[["loyal", "sleeping", "lost"]].reset_index()
    names = name_clusters(profiles_from_levels(chosen), archetypes, stage="tsne")
    assert names["segment_name"].tolist() == ["loyal", "sleeping", "lost"]


def test_more_clusters_than_archetypes_get_truthful_qualified_names(
    archetypes: pd.DataFrame,
) -> None:
    """Six PCA clusters, three archetypes: three plain names; each extra cluster is named after
    its nearest archetype, and its qualifier is the measure on which it differs most from the
    cluster holding the plain name, in the right direction."""
    profiles = six_shuffled_profiles()
    names = name_clusters(profiles, archetypes, stage="pca")
    assert_descriptive(names["segment_name"], archetypes, "pca")
    plain = names.loc[~names["segment_name"].str.contains(","), "segment_name"]
    assert sorted(plain) == ["intermediate", "lost", "loyal"]
    extras = names.loc[names["segment_name"].str.contains(",")]
    assert len(extras) == 3
    levels = cluster_levels(profiles).set_index("cluster_id")
    holder = names.set_index("segment_name")["cluster_id"]
    pca = archetypes.loc[archetypes["stage"] == "pca"].set_index("segment_name")
    words = {
        "recency_level": ("more recent", "longer gone"),
        "frequency_level": ("fewer orders", "more orders"),
        "monetary_level": ("lower spend", "higher spend"),
    }
    for _, row in extras.iterrows():
        base, qualifiers = split_name(row["segment_name"])
        distances = np.linalg.norm(
            pca[list(LEVEL_COLUMNS)].to_numpy() - levels.loc[row["cluster_id"]].to_numpy(), axis=1
        )
        assert base == pca.index[int(np.argmin(distances))]
        assert row["archetype_distance"] == pytest.approx(distances.min())
        difference = levels.loc[row["cluster_id"]] - levels.loc[holder[base]]
        largest = difference.abs().idxmax()
        word = words[largest][int(difference[largest] > 0)]
        orders = profiles.set_index("cluster_id")["mean_frequency"]
        if word == "fewer orders" and orders[row["cluster_id"]] < 1.5 <= orders[holder[base]]:
            word = "one order"
        assert qualifiers == (word,)
        assert row["strategy"].startswith(pca.at[base, "strategy"] + " ")


def test_taken_qualified_names_fall_back_to_the_next_difference() -> None:
    """One archetype 'everyone' at the lowest levels; cluster 0 is at it. Cluster 1 differs most
    by recency, cluster 2 too but then by spend, cluster 3 by orders and spend equally (ties go
    to orders). Names inherited by other clusters push them to the next qualifier, then to two
    qualifiers; cluster 4 lies inside the ranges and changes no level."""
    profiles = pd.DataFrame(
        {
            "cluster_id": [0, 1, 2, 3, 4],
            "mean_recency_days": [0.0, 100.0, 80.0, 10.0, 50.0],
            "mean_frequency": [1.0, 1.297, 1.144, 3.0, 1.2],
            "mean_monetary": [100.0, 126.0, 317.0, 1000.0, 200.0],
        }
    )
    archetypes = one_archetype()
    first = name_clusters(profiles.iloc[:4], archetypes, stage="pca")
    assert first["segment_name"].tolist() == [
        "everyone",
        "everyone, longer gone",
        "everyone, higher spend",
        "everyone, more orders",
    ]
    assert first["strategy"].tolist()[1] == "Send the newsletter. Keep what you spend on them low."
    inherited = {
        2: "everyone, longer gone",
        3: "everyone, more orders",
        4: "everyone, higher spend",
    }
    second = name_clusters(profiles, archetypes, stage="pca", inherited=inherited)
    assert second["segment_name"].tolist() == [
        "everyone",
        "everyone, longer gone, more orders",
        *inherited.values(),
    ]
    assert second["name_source"].tolist() == ["archetype"] * 2 + ["previous_model"] * 3


def test_no_unique_name_left_is_a_clear_error() -> None:
    """Two identical clusters for one archetype: nothing tells the second apart."""
    profiles = pd.DataFrame(
        {
            "cluster_id": [0, 1],
            "mean_recency_days": [20.0, 20.0],
            "mean_frequency": [2.0, 2.0],
            "mean_monetary": [300.0, 300.0],
        }
    )
    with pytest.raises(
        ValueError, match=r"cannot give cluster 1 a unique segment name.*n_clusters"
    ):
        name_clusters(profiles, one_archetype(), stage="pca")


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
    raw = rng.integers(0, 9, n)  # nine clusters: two of them get qualified names

    def customer_names(labels: np.ndarray) -> pd.Series:
        ids = order_clusters(labels, rfm)
        names = name_clusters(profile_clusters(rfm, ids, stage="tsne"), archetypes, stage="tsne")
        assert_descriptive(names["segment_name"], archetypes, "tsne")
        return pd.Series(ids).map(names.set_index("cluster_id")["segment_name"])

    reference = customer_names(raw)
    assert set(reference.map(base_name)) == TSNE_NAMES and reference.nunique() == 9
    for seed in range(5):
        permutation = np.random.default_rng(seed).permutation(9) + 3 * seed
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


def test_inherited_qualified_names_keep_their_archetype_and_free_the_base_name(
    archetypes: pd.DataFrame,
) -> None:
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    profiles = profiles_from_levels(tsne)
    names = name_clusters(
        profiles, archetypes, stage="tsne", inherited={3: "sleeping, longer gone"}
    )
    assert names.at[3, "segment_name"] == "sleeping, longer gone"
    assert names.at[3, "name_source"] == "previous_model"
    assert base_name("sleeping, longer gone") == "sleeping" and base_name("at risk") == "at risk"
    assert split_name("lost, one order, lower spend") == ("lost", ("one order", "lower spend"))
    sleeping = tsne.set_index("segment_name").loc["sleeping"]
    assert names.at[3, "strategy"] == sleeping["strategy"] + " " + QUALIFIERS["longer gone"].advice
    assert names["segment_name"].is_unique
    assert set(names["segment_name"]) == (
        set(tsne["segment_name"]) - {tsne.at[3, "segment_name"]}
    ) | {"sleeping, longer gone"}


@pytest.mark.parametrize("old_name", ["sleeping (2)", "sleeping, gold", "sleeping,"])
def test_numbered_or_unknown_qualified_names_are_not_inherited(
    archetypes: pd.DataFrame, old_name: str
) -> None:
    """A name from an older model with a number (the former rule) or a qualifier outside the
    vocabulary is not kept: the cluster is named afresh."""
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    profiles = profiles_from_levels(tsne)
    names = name_clusters(profiles, archetypes, stage="tsne", inherited={3: old_name})
    assert names.at[3, "name_source"] == "archetype"
    assert names["segment_name"].tolist() == tsne["segment_name"].tolist()


def test_a_name_whose_archetype_is_gone_is_not_inherited(archetypes: pd.DataFrame) -> None:
    tsne = archetypes.loc[archetypes["stage"] == "tsne"].reset_index(drop=True)
    profiles = profiles_from_levels(tsne)
    names = name_clusters(profiles, archetypes, stage="tsne", inherited={0: "champions"})
    assert names.at[0, "name_source"] == "archetype"
    assert names.at[0, "segment_name"] == tsne.at[0, "segment_name"]


def test_more_clusters_than_free_names_get_qualified_names_after_the_inherited_ones(
    archetypes: pd.DataFrame,
) -> None:
    """Six PCA clusters, three archetypes, two names inherited (one a qualified name): every
    name is unique and descriptive, and no other cluster takes the inherited qualified name."""
    profiles = six_shuffled_profiles()
    inherited = {0: "lost, longer gone", 1: "loyal"}
    names = name_clusters(profiles, archetypes, stage="pca", inherited=inherited)
    assert_descriptive(names["segment_name"], archetypes, "pca")
    assert names.loc[[0, 1], "segment_name"].tolist() == list(inherited.values())
    assert names.loc[[0, 1], "name_source"].eq("previous_model").all()
    assert names.loc[2:, "name_source"].eq("archetype").all()
    assert {"intermediate", "lost"} <= set(names.loc[2:, "segment_name"])
