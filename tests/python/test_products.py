"""Product categories: description normalisation, TF-IDF features, k by silhouette, labels, and the
cutoff (nothing after it reaches the fit), on small hand-made catalogues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retail_segments.ml.config import ConfigError
from retail_segments.ml.products import (
    ASSIGNMENT_COLUMNS,
    CATEGORY_COLUMNS,
    LINE_GROUP_COLUMNS,
    SELECTION_COLUMNS,
    SETTINGS,
    ProductCategorySettings,
    build_text_features,
    categorize_products,
    category_labels,
    description_tokens,
    fit_text_features,
    median_unit_price,
    product_catalogue,
    product_categories_fit,
    product_settings,
    singular,
    stable_category_ids,
)
from retail_segments.ml.results import result_frame

CUTOFF = "2011-10-01"

# Three kinds of goods with disjoint vocabularies; colour, size and packaging words on top.
CATALOGUE: dict[str, str] = {
    "1001": "CHRISTMAS TREE DECORATION RED",
    "1002": "CHRISTMAS TREE DECORATION GOLD",
    "1003": "CHRISTMAS STAR DECORATION",
    "1004": "HANGING CHRISTMAS STAR",
    "1005": "SET OF 6 CHRISTMAS TREE STARS",
    "1006": "CHRISTMAS DECORATIONS PINK",
    "2001": "TEA MUG",
    "2002": "TEA MUG BLUE",
    "2003": "TEA CUP AND SAUCER",
    "2004": "TEA CUPS SET OF 2",
    "2005": "MUG AND CUP",
    "2006": "LARGE TEA MUG",
    "3001": "BEAD NECKLACE PINK",
    "3002": "BEAD NECKLACE BLUE",
    "3003": "BEAD BRACELET",
    "3004": "NECKLACE AND BRACELET",
    "3005": "BRACELET IVORY",
    "3006": "BEAD BRACELETS",
}
# First sold after the cutoff: never part of the fit.
LATER: dict[str, str] = {"1007": "CHRISTMAS TREE DECORATION SILVER", "3007": "BEADED NECKLACES"}
SMALL = {"k_range": [2, 3], "n_components": 3}


def _lines(catalogue: dict[str, str], later: dict[str, str]) -> pd.DataFrame:
    rows = []
    for position, (code, description) in enumerate(catalogue.items()):
        for week in range(2):
            day = pd.Timestamp("2011-01-03") + pd.Timedelta(days=7 * position + week)
            rows.append((code, description, 1.0 + position / 10, day))
    for code, description in later.items():
        rows.append((code, description, 2.5, pd.Timestamp("2011-11-02 10:00")))
    return pd.DataFrame(rows, columns=["stock_code", "description", "unit_price", "invoice_at"])


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    return _lines(CATALOGUE, LATER)


@pytest.fixture(scope="module")
def result(lines: pd.DataFrame):
    return categorize_products(lines, CUTOFF, SMALL)


def _category_of(result, code: str) -> int:
    assignments = result.assignments.set_index("stock_code")
    return int(assignments.at[code, "product_category"])


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("boxes", "box"),
        ("glasses", "glass"),
        ("doilies", "doily"),
        ("dishes", "dish"),
        ("candles", "candle"),
        ("t-lights", "t-light"),
        ("christmas", "christmas"),
        ("glass", "glass"),
        ("cactus", "cactus"),
        ("bus", "bus"),
    ],
)
def test_singular_reduces_plurals_only(word: str, expected: str) -> None:
    assert singular(word) == expected


def test_description_tokens_drop_colours_noise_digits_and_normalise_t_lights() -> None:
    assert description_tokens("SET OF 6 T-LIGHTS SNOWFLAKES, PINK") == ["t-light", "snowflake"]
    assert description_tokens("TLIGHT HOLDER") == description_tokens("T LIGHT HOLDERS")
    assert description_tokens("RED RETROSPOT CAKE STAND") == ["retrospot", "cake", "stand"]
    assert description_tokens("LARGE JUMBO BAG 3 ASSORTED DESIGNS") == ["bag"]
    assert description_tokens("WRAP, 50'S CHRISTMAS") == ["wrap", "christmas"]


def test_colour_variants_get_the_same_text_vector() -> None:
    descriptions = pd.Series(list(CATALOGUE.values()))
    vectors = fit_text_features(build_text_features(n_components=3), descriptions)
    red, gold = (list(CATALOGUE).index(code) for code in ("1001", "1002"))
    np.testing.assert_allclose(vectors[red], vectors[gold])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_text_features_cap_the_topics_on_a_tiny_catalogue() -> None:
    features = build_text_features(n_components=50, min_df=1)
    vectors = fit_text_features(features, pd.Series(["TEA MUG", "TEA CUP", "BEAD NECKLACE"]))
    assert vectors.shape == (3, 2)
    with pytest.raises(ValueError, match="term"):
        fit_text_features(build_text_features(min_df=2), pd.Series(["TEA MUG", "BEAD BOX"]))


def test_product_catalogue_takes_the_most_frequent_description_and_median_price() -> None:
    lines = pd.DataFrame(
        {
            "stock_code": ["A", "A", "A", "B", "B"],
            "description": ["MUG", "TEA MUG", "TEA MUG", "ZEBRA", "APPLE"],
            "unit_price": [1.0, 2.0, 4.0, 3.0, 5.0],
        }
    )
    catalogue = product_catalogue(lines)
    assert catalogue.stock_code.tolist() == ["A", "B"]
    assert catalogue.description.tolist() == ["TEA MUG", "APPLE"]  # tie: alphabetical
    assert catalogue.median_unit_price.tolist() == [2.0, 4.0]


def test_silhouette_picks_the_three_kinds_of_goods(result) -> None:
    selection = result.selection
    assert selection.loc[selection.is_selected, "n_clusters"].tolist() == [3]
    assert selection.loc[selection.is_selected, "selection_reason"].item() == "highest silhouette"
    for group in ("1", "2", "3"):
        categories = {_category_of(result, code) for code in CATALOGUE if code.startswith(group)}
        assert len(categories) == 1, group
    assert len({_category_of(result, code) for code in ("1001", "2001", "3001")}) == 3


def test_categories_are_labelled_by_their_words(result) -> None:
    labels = result.categories.set_index("product_category")["product_category_label"]
    assert "christmas" in labels[_category_of(result, "1001")].split(" / ")
    assert "tea" in labels[_category_of(result, "2001")].split(" / ")
    assert "bead" in labels[_category_of(result, "3001")].split(" / ")
    fitted = result.assignments.loc[result.assignments.assignment_method == "fit"]
    assert fitted.product_category.value_counts().sort_index().tolist() == [6, 6, 6]
    assert not any(word in " ".join(labels) for word in ("pink", "blue", "set", "large"))


def test_later_products_get_the_nearest_category_without_entering_the_fit(result) -> None:
    assignments = result.assignments.set_index("stock_code")
    assert list(result.assignments.columns) == list(ASSIGNMENT_COLUMNS)
    assert sorted(assignments.index) == sorted([*CATALOGUE, *LATER])
    assert (assignments.loc[list(LATER), "assignment_method"] == "nearest_category").all()
    assert (assignments.loc[list(CATALOGUE), "assignment_method"] == "fit").all()
    assert _category_of(result, "1007") == _category_of(result, "1001")
    assert _category_of(result, "3007") == _category_of(result, "3001")


def test_the_fit_window_ends_before_the_cutoff(result, lines: pd.DataFrame) -> None:
    fit = result.model_fit.iloc[0]
    before = lines.loc[lines.invoice_at < pd.Timestamp(CUTOFF), "invoice_at"]
    assert fit.fit_window_end == before.max()
    assert fit.fit_window_start == before.min()
    assert fit.fit_window_end < fit.cutoff_at == pd.Timestamp(CUTOFF)
    assert fit.n_training_rows == len(CATALOGUE)


def test_lines_after_the_cutoff_do_not_change_the_fit(result) -> None:
    # Rewrite a fitted product's description after the cutoff and add more new products:
    # the categories of the fitted products, the labels and the scores stay the same.
    noisy = _lines(CATALOGUE, {**LATER, "4001": "TEA MUG CHRISTMAS", "4002": "BEAD MUG"})
    renamed = noisy.loc[noisy.stock_code == "2001"].assign(
        description="BEAD NECKLACE", invoice_at=pd.Timestamp("2011-11-03")
    )
    other = categorize_products(pd.concat([noisy, renamed], ignore_index=True), CUTOFF, SMALL)
    fitted = other.assignments.loc[other.assignments.assignment_method == "fit"]
    pd.testing.assert_frame_equal(
        fitted.reset_index(drop=True),
        result.assignments.loc[result.assignments.assignment_method == "fit"].reset_index(
            drop=True
        ),
    )
    pd.testing.assert_frame_equal(other.categories, result.categories)
    pd.testing.assert_frame_equal(other.selection, result.selection)


def test_categories_are_refitted_when_the_cutoff_moves(lines: pd.DataFrame) -> None:
    moved = categorize_products(lines, "2011-12-01", SMALL)
    assert (moved.assignments.assignment_method == "fit").all()
    assert moved.model_fit.fit_window_end.item() == pd.Timestamp("2011-11-02 10:00")


def test_pinned_number_of_categories(lines: pd.DataFrame) -> None:
    pinned = categorize_products(lines, CUTOFF, {**SMALL, "n_clusters": 2})
    assert pinned.categories.product_category.tolist() == [0, 1]
    assert "pinned" in pinned.selection.loc[pinned.selection.is_selected, "selection_reason"].item()


def test_no_training_lines_is_an_error(lines: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no sales lines before"):
        categorize_products(lines, "2010-01-01", SMALL)


def test_stable_ids_do_not_depend_on_label_values() -> None:
    codes = pd.Series(["a", "b", "c", "d", "e", "f"])
    first = stable_category_ids(np.array([5, 5, 9, 9, 9, 1]), codes)
    relabelled = stable_category_ids(np.array([0, 0, 2, 2, 2, 7]), codes)
    assert first.tolist() == relabelled.tolist() == [1, 1, 0, 0, 0, 2]


def test_labels_take_more_terms_until_they_differ() -> None:
    labels = category_labels(
        {0: ["heart", "t-light", "holder", "zinc"], 1: ["heart", "t-light", "holder", "glass"]}
    )
    assert labels == {0: "heart / t-light / holder / zinc", 1: "heart / t-light / holder / glass"}
    same = category_labels({0: ["tea", "mug"], 1: ["tea", "mug"], 2: []})
    assert same == {0: "tea / mug (0)", 1: "tea / mug (1)", 2: "unnamed (2)"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"k_ranges": [2, 3]}, "unknown key 'k_ranges'"),
        ({"k_range": [1, 3]}, "key 'k_range' = [1, 3]: must be [k_min, k_max]"),
        ({"k_range": [4, 3]}, "key 'k_range' = [4, 3]"),
        ({"n_components": 1}, "key 'n_components' = 1"),
        ({"n_clusters": True}, "key 'n_clusters' = True"),
        ({"max_threads": 0}, "key 'max_threads' = 0"),
    ],
)
def test_bad_config_is_refused_with_the_block_key_and_value(config: dict, message: str) -> None:
    block = r"ml_product_categories_fit\.meta\.product_categories"
    with pytest.raises(ConfigError, match=block) as error:
        product_settings(config)
    assert message in str(error.value)
    with pytest.raises(ConfigError, match=block):
        categorize_products(_lines(CATALOGUE, LATER), CUTOFF, config)


def test_settings_default_to_the_documented_values() -> None:
    assert {"product_categories": ProductCategorySettings} == SETTINGS
    assert product_settings(None).as_dict() == {
        "k_range": (5, 12),
        "n_clusters": None,
        "n_components": 10,
        "min_df": 2,
        "n_top_terms": 10,
        "random_state": 42,
        "n_init": 10,
        "max_threads": 1,
    }
    assert product_settings({}) == product_settings(None)
    assert product_settings({"k_range": [2, 3]}).k_range == (2, 3)
    for field in ProductCategorySettings.model_fields.values():
        assert field.description


def test_the_fit_record_is_one_keyed_row_with_every_result(result, lines: pd.DataFrame) -> None:
    record = product_categories_fit(lines, CUTOFF, SMALL)
    assert record.num_rows == 1
    keys = record.select(["fit_name", "cutoff_at", "n_training_products", "n_categories"])
    assert keys.to_pylist() == [
        {
            "fit_name": "product_categories",
            "cutoff_at": pd.Timestamp(CUTOFF).to_pydatetime(),
            "n_training_products": len(CATALOGUE),
            "n_categories": 3,
        }
    ]
    for name, frame in result.tables().items():
        pd.testing.assert_frame_equal(
            result_frame(record, name).convert_dtypes(), frame.convert_dtypes(), check_dtype=False
        )
    assert list(result_frame(record, "candidates").columns) == list(SELECTION_COLUMNS)
    assert list(result_frame(record, "products").columns) == list(ASSIGNMENT_COLUMNS)
    assert list(result_frame(record, "categories").columns) == list(CATEGORY_COLUMNS)


# ---------------------------------------------------------------- lines grouped in SQL first
def _varied_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """The fixture's lines plus repeats with other prices and descriptions, a missing
    description and price, and lines on both sides of the cutoff for the same product."""
    rng = np.random.default_rng(5)
    extra = lines.sample(60, replace=True, random_state=1).reset_index(drop=True)
    extra["unit_price"] = rng.choice([0.85, 1.25, 1.65, 2.1, 4.95], len(extra))
    shift = pd.to_timedelta(rng.integers(0, 300, len(extra)), "D")
    extra["invoice_at"] = extra["invoice_at"] + shift
    extra.loc[::7, "description"] = extra.loc[::7, "description"] + " WHITE"
    extra.loc[3, "description"] = None
    extra.loc[4, "unit_price"] = np.nan
    return pd.concat([lines, extra], ignore_index=True)


def _grouped(lines: pd.DataFrame, cutoff: str = CUTOFF, seed: int = 0) -> pd.DataFrame:
    """The lines grouped as models/intermediate/products/int_product_lines__grouped.sql groups
    them (nulls form their own groups), in a shuffled row order as a warehouse may return it."""
    keys = list(LINE_GROUP_COLUMNS[:4])
    grouped = (
        lines.assign(is_before_cutoff=lines.invoice_at < pd.Timestamp(cutoff))
        .groupby(keys, dropna=False)
        .agg(
            n_lines=("invoice_at", "size"),
            first_invoice_at=("invoice_at", "min"),
            last_invoice_at=("invoice_at", "max"),
        )
        .reset_index()
    )
    return grouped.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_grouped_lines_count_every_line_once() -> None:
    lines = _varied_lines(_lines(CATALOGUE, LATER))
    groups = _grouped(lines)
    assert list(groups.columns) == list(LINE_GROUP_COLUMNS)
    assert groups.n_lines.sum() == len(lines)
    keys = ["stock_code", "description", "unit_price", "is_before_cutoff"]
    assert not groups.duplicated(keys).any()
    assert len(groups) < len(lines)


def test_median_price_of_grouped_lines_is_the_median_of_the_lines() -> None:
    rng = np.random.default_rng(11)
    n = 2_000
    lines = pd.DataFrame(
        {
            "stock_code": rng.choice(["A", "B", "C", "D"], n),
            "description": "X",
            "unit_price": rng.choice([0.1, 0.2, 0.3, 0.55, 1.7, 2.08, np.nan], n),
            "invoice_at": pd.Timestamp("2011-01-01"),
        }
    )
    lines.loc[lines.stock_code == "D", "unit_price"] = np.nan
    lines = pd.concat([lines, lines.iloc[:1].assign(stock_code="E", unit_price=0.3)])
    expected = lines.groupby("stock_code")["unit_price"].median()
    grouped = median_unit_price(_grouped(lines))
    pd.testing.assert_series_equal(median_unit_price(lines), expected.dropna(), check_names=False)
    pd.testing.assert_series_equal(grouped, expected.dropna(), check_names=False)
    catalogue = product_catalogue(_grouped(lines)).set_index("stock_code")
    assert np.isnan(catalogue.at["D", "median_unit_price"])


def test_grouped_lines_in_any_order_give_the_result_of_the_lines() -> None:
    lines = _varied_lines(_lines(CATALOGUE, LATER))
    from_lines = categorize_products(lines, CUTOFF, SMALL)
    for seed in (0, 1):
        from_groups = categorize_products(_grouped(lines, seed=seed), CUTOFF, SMALL)
        for name, frame in from_lines.tables().items():
            pd.testing.assert_frame_equal(from_groups.tables()[name], frame)
    catalogue = product_catalogue(_grouped(lines)).set_index("stock_code")
    reference = lines.assign(description=lines.description.fillna(""))
    assert catalogue.median_unit_price.to_dict() == (
        reference.groupby("stock_code")["unit_price"].median().to_dict()
    )
