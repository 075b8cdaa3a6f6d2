"""Product categories from product descriptions: text features, KMeans with k chosen by silhouette.

The flow (``categorize_products``), given the cleaned sales lines and the cutoff:

1. Training lines are the lines strictly before the cutoff; nothing else reaches a fit.
2. ``product_catalogue`` makes one row per stock code from a set of lines: the description on most
   lines (ties to the first alphabetically) and the median unit price. The catalogue of the
   training lines is what the categories are fitted on.

The lines may come grouped (``LINE_GROUP_COLUMNS``, the dbt model
``int_product_lines__grouped``): one row per stock code, description, unit price and side of the
cutoff, with ``n_lines`` and the first and last invoice time. Only those columns decide the
result, so the grouped lines give exactly what the lines give, while pandas holds one row per
product variant instead of one per sales line (at 100 times the real file's size, tens of
thousands of rows instead of 40 million).
3. Text features (``build_text_features``): ``description_tokens`` normalises each description
   (see below), TF-IDF weighs the terms (sublinear tf, terms in at least ``min_df`` products),
   ``TruncatedSVD`` reduces them to ``n_components`` latent topics (LSA) and rows are scaled to
   unit length, so Euclidean distance ranks like cosine similarity.
4. KMeans candidates for every k of ``k_range`` are scored with ``clustering.evaluate_candidates``
   and ``clustering.select_candidate`` keeps the highest silhouette (or the pinned ``n_clusters``);
   ``k_max`` is capped at the number of training products - 1.
5. The final ``Pipeline(tfidf, svd, normalize, kmeans)`` is fitted on the training catalogue.
   Category ids are stable: 0 is the category with the most products, ties to the smallest stock
   code. Each category is described by its ``top_terms`` (highest mean TF-IDF weight among its
   products) and labelled by the first three of them ("christmas / decoration / tree").
6. Products first sold on or after the cutoff are not in the fit; the fitted pipeline assigns
   them to the nearest category (``predict``), from the catalogue of their own lines.

The dbt model ``ml_product_categories_fit`` returns the fit as one record
(``product_categories_fit``): per candidate k, per stock code and per category (label and top
terms: what only the fit knows), and the training window. The categories' sizes, prices and
revenue are computed from the assignments in SQL (``ml.product_categories``). Settings:
``ProductCategorySettings`` (the model's ``meta.product_categories``).

Normalisation of a description (``description_tokens``): lower case; "T-LIGHT", "T LIGHT" and
"TLIGHT" become the term ``t-light``; words are runs of letters (hyphenated runs stay one word), so
digits and punctuation go; colour words (``COLOUR_WORDS``: a product's colour is a variant, not a
kind of goods) and packaging, size and filler words (``NOISE_WORDS``) are dropped, as are
one-letter words; English plurals are reduced by ``singular`` (a documented light stemmer).

Unit price is not a feature: a price band (three quantile bands of the median price, one-hot)
added to the text features lowered the silhouette at every k on the real data and split the
word-based categories by price. Each category's median price is reported instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer

from retail_segments.ml import clustering
from retail_segments.ml.clustering import select_kmeans
from retail_segments.ml.results import fit_record
from retail_segments.ml.settings import PRODUCT_SETTINGS, ProductCategorySettings
from retail_segments.ml.threads import fit_threads

COLOUR_WORDS: frozenset[str] = frozenset(
    {
        "amber", "aqua", "beige", "black", "blk", "blue", "bronze", "brown", "clear", "col",
        "color", "colors", "colour", "coloured", "colours", "copper", "cream", "fuchsia",
        "fuschia", "gold", "green", "grey", "gray", "ivory", "lilac", "multicolour", "navy",
        "orange", "pastel", "peach", "pink", "purple", "red", "silver", "teal", "turq",
        "turquoise", "white", "wht", "yellow",
    }
)  # fmt: skip
NOISE_WORDS: frozenset[str] = frozenset(
    {
        "and", "assorted", "asst", "asstd", "big", "cm", "design", "designs", "for", "giant",
        "in", "jumbo", "large", "medium", "mini", "new", "of", "on", "pack", "packs", "set",
        "sets", "size", "small", "the", "to", "with",
    }
)  # fmt: skip

_T_LIGHT = re.compile(r"\bt[- ]?lights?\b")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


SETTINGS = PRODUCT_SETTINGS

ASSIGNMENT_COLUMNS: tuple[str, ...] = (
    "stock_code",
    "product_category",
    "assignment_method",
    "description_used",
    "median_unit_price",
)
CATEGORY_COLUMNS: tuple[str, ...] = (
    "product_category",
    "product_category_label",
    "top_terms",
)
# the segmentation's model-selection columns without its stage and algorithm (always k-means)
SELECTION_COLUMNS: tuple[str, ...] = tuple(
    column for column in clustering.SELECTION_COLUMNS if column not in ("stage", "algorithm")
)
LINE_GROUP_COLUMNS: tuple[str, ...] = (
    "stock_code",
    "description",
    "unit_price",
    "is_before_cutoff",
    "n_lines",
    "first_invoice_at",
    "last_invoice_at",
)
MODEL_FIT_COLUMNS: tuple[str, ...] = (
    "model_name",
    "algorithm",
    "n_clusters",
    "silhouette",
    "n_training_rows",
    "training_unit",
    "fit_window_start",
    "fit_window_end",
    "cutoff_at",
)


def singular(word: str) -> str:
    """Reduce an English plural to its singular with a few suffix rules (a light stemmer).

    Words of three letters or fewer are kept. ``-sses`` -> ``-ss`` (glasses), ``-ies`` -> ``-y``
    (doilies), ``-xes``/``-ches``/``-shes``/``-zes`` lose ``-es`` (boxes, dishes), and a final
    ``-s`` goes unless the word ends in ``ss``, ``us``, ``is``, ``as`` or ``os`` (glass, christmas).
    """
    if len(word) <= 3:
        return word
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("xes", "ches", "shes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "as", "os")):
        return word[:-1]
    return word


def description_tokens(description: str) -> list[str]:
    """Normalised terms of one product description, in order (the module docstring's rule).

    ``"SET OF 6 T-LIGHTS SNOWFLAKES, PINK"`` gives ``["t-light", "snowflake"]``.
    """
    text = _T_LIGHT.sub("t-light", str(description).lower())
    terms = []
    for word in _WORD.findall(text):
        if len(word) < 2 or word in COLOUR_WORDS or word in NOISE_WORDS:
            continue
        terms.append(singular(word))
    return terms


def product_settings(config: Mapping[str, Any] | None = None) -> ProductCategorySettings:
    """The ``product_categories`` meta block (None or {} for every default) as validated
    settings; raises ``ConfigError`` naming the block, the key, the value and the rule."""
    return ProductCategorySettings.parse(
        config, name="ml_product_categories_fit.meta.product_categories"
    )


def _as_line_groups(lines: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """``lines`` as ``LINE_GROUP_COLUMNS``: grouped lines (with ``n_lines``) sorted by their four
    keys (a warehouse table has no order), plain sales lines (with ``invoice_at``) as groups of
    one line."""
    if "n_lines" in lines.columns:
        keys = list(LINE_GROUP_COLUMNS[:4])
        return lines.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)
    return lines.assign(
        is_before_cutoff=lines["invoice_at"] < cutoff,
        n_lines=1,
        first_invoice_at=lines["invoice_at"],
        last_invoice_at=lines["invoice_at"],
    )


def median_unit_price(lines: pd.DataFrame) -> pd.Series:
    """Median ``unit_price`` per ``stock_code`` over the lines, a row counting ``n_lines`` times
    (once without that column); missing prices are skipped.

    The same number pandas' ``groupby(...).median()`` gives on the lines themselves: the middle
    price, or the mean of the two middle prices ``(a + b) / 2`` for an even count. Returns a
    float64 Series indexed by stock code (codes without any price left out), sorted.
    """
    priced = lines.loc[lines["unit_price"].notna()]
    weights = priced["n_lines"] if "n_lines" in priced.columns else pd.Series(1, priced.index)
    counts = weights.groupby([priced["stock_code"], priced["unit_price"]], sort=True).sum()
    if counts.empty:
        return pd.Series(dtype="float64", index=pd.Index([], name="stock_code"))
    prices = counts.index.get_level_values(1).to_numpy(dtype="float64")
    ends = np.cumsum(counts.to_numpy(dtype="int64"))
    totals = counts.groupby(level=0, sort=True).sum()
    n = totals.to_numpy(dtype="int64")
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    low = prices[np.searchsorted(ends, starts + (n - 1) // 2, side="right")]
    high = prices[np.searchsorted(ends, starts + n // 2, side="right")]
    return pd.Series((low + high) / 2, index=totals.index.rename("stock_code"), dtype="float64")


def product_catalogue(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per stock code of ``lines``.

    Parameters
    ----------
    lines : sales lines with ``stock_code, description, unit_price``, or grouped lines
        (``LINE_GROUP_COLUMNS``), where a row with ``n_lines`` stands for that many lines.

    Returns
    -------
    DataFrame ``stock_code, description, median_unit_price`` sorted by ``stock_code``:
    ``description`` is the description on most of the code's lines (ties to the first
    alphabetically; an empty string when no line has one), ``median_unit_price`` from
    ``median_unit_price``.
    """
    described = lines.assign(description=lines["description"].fillna("").astype("str"))
    weights = described["n_lines"] if "n_lines" in described.columns else 1
    counts = (
        described.assign(n_lines=weights)
        .groupby(["stock_code", "description"], sort=False)["n_lines"]
        .sum()
    )
    main = (
        counts.rename("n_lines")
        .reset_index()
        .sort_values(["stock_code", "n_lines", "description"], ascending=[True, False, True])
        .drop_duplicates("stock_code")
        .set_index("stock_code")["description"]
    )
    prices = median_unit_price(lines)
    catalogue = pd.DataFrame({"description": main, "median_unit_price": prices}).reset_index()
    catalogue = catalogue.rename(columns={"index": "stock_code"})
    catalogue["stock_code"] = catalogue["stock_code"].astype("str")
    catalogue["median_unit_price"] = catalogue["median_unit_price"].astype("float64")
    return catalogue.sort_values("stock_code", kind="stable").reset_index(drop=True)


def build_text_features(
    n_components: int = 10, min_df: int = 2, random_state: int = 42
) -> Pipeline:
    """Unfitted text-feature pipeline: description -> unit-length LSA vector.

    ``TfidfVectorizer(tokenizer=description_tokens, sublinear_tf=True, min_df=min_df)`` ->
    ``TruncatedSVD(n_components, random_state)`` -> ``Normalizer()``. Use ``fit_text_features``
    to fit it: it caps ``n_components`` for small catalogues.
    """
    return Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(
                    tokenizer=description_tokens,
                    token_pattern=None,
                    lowercase=False,
                    min_df=min_df,
                    sublinear_tf=True,
                ),
            ),
            ("svd", TruncatedSVD(n_components=n_components, random_state=random_state)),
            ("normalize", Normalizer()),
        ]
    )


def fit_text_features(features: Pipeline, descriptions: pd.Series) -> np.ndarray:
    """Fit ``features`` (from ``build_text_features``) on ``descriptions``; return the vectors.

    ``n_components`` is capped at (number of TF-IDF terms - 1) and (number of descriptions - 1),
    which ``TruncatedSVD`` needs; it is unchanged on catalogues of real size. Raises
    ``ValueError`` if fewer than two terms survive ``min_df``.
    """
    n_terms = len(features.named_steps["tfidf"].fit(descriptions).vocabulary_)
    if n_terms < 2:
        raise ValueError(f"only {n_terms} term(s) left after normalisation and min_df")
    wanted = features.named_steps["svd"].n_components
    features.set_params(svd__n_components=max(1, min(wanted, n_terms - 1, len(descriptions) - 1)))
    return features.fit_transform(descriptions)


def stable_category_ids(labels: np.ndarray, stock_codes: pd.Series) -> np.ndarray:
    """Renumber raw KMeans labels 0..k-1: most products first, ties to the smallest stock code.

    The result depends only on which products share a label, never on the label values.
    """
    frame = pd.DataFrame({"label": np.asarray(labels), "stock_code": stock_codes.to_numpy()})
    stats = frame.groupby("label").agg(size=("stock_code", "size"), first=("stock_code", "min"))
    ranked = stats.sort_values(["size", "first"], ascending=[False, True], kind="stable")
    mapping = {label: new_id for new_id, label in enumerate(ranked.index)}
    return np.array([mapping[label] for label in frame["label"]], dtype="int64")


def top_terms(
    tfidf: TfidfVectorizer, descriptions: pd.Series, category_ids: np.ndarray, n_terms: int
) -> dict[int, list[str]]:
    """The ``n_terms`` most characteristic terms of each category.

    A term's weight in a category is its mean TF-IDF weight over the category's products; terms
    are sorted by descending weight, ties alphabetically, and terms of weight 0 are left out.
    Returns ``{category id: [terms]}``.
    """
    weights = tfidf.transform(descriptions)
    terms = tfidf.get_feature_names_out()
    alphabetical = np.argsort(terms, kind="stable")
    result: dict[int, list[str]] = {}
    for category in np.unique(category_ids):
        mean = np.asarray(weights[category_ids == category].mean(axis=0)).ravel()[alphabetical]
        order = np.argsort(-mean, kind="stable")[:n_terms]
        result[int(category)] = [str(terms[alphabetical[i]]) for i in order if mean[i] > 0]
    return result


def category_labels(terms: Mapping[int, Sequence[str]], n_words: int = 3) -> dict[int, str]:
    """Readable labels: the first ``n_words`` terms joined by " / ".

    Categories whose labels would coincide take one more term each until they differ; if the
    terms run out, the category id is appended in brackets. A category without terms is
    "unnamed (<id>)". Returns ``{category id: label}``, all distinct.
    """
    used = {category: n_words for category in terms}
    while True:
        labels = {
            category: " / ".join(terms[category][: used[category]]) or f"unnamed ({category})"
            for category in terms
        }
        repeated = pd.Series(labels).duplicated(keep=False)
        clashing = [c for c in repeated.index[repeated] if used[c] < len(terms[c])]
        if not clashing:
            break
        for category in clashing:
            used[category] += 1
    seen = pd.Series(labels).duplicated(keep=False)
    for category in seen.index[seen]:
        labels[category] = f"{labels[category]} ({category})"
    return labels


@dataclass(frozen=True)
class ProductCategories:
    """Outcome of ``categorize_products``.

    ``pipeline`` is the fitted ``Pipeline(tfidf, svd, normalize, kmeans)``; it emits raw KMeans
    labels, which ``category_of_label`` maps to stable category ids. Frames: ``selection`` (one
    row per candidate k, ``SELECTION_COLUMNS``), ``assignments`` (one row per stock code,
    ``ASSIGNMENT_COLUMNS``), ``categories`` (one row per category, ``CATEGORY_COLUMNS``: what
    only the fit knows; sizes, prices and revenue are computed in SQL from the assignments),
    ``model_fit`` (one row, ``MODEL_FIT_COLUMNS``). ``cutoff`` is the fit's cutoff.
    """

    pipeline: Pipeline
    category_of_label: Mapping[int, int]
    cutoff: pd.Timestamp
    selection: pd.DataFrame
    assignments: pd.DataFrame
    categories: pd.DataFrame
    model_fit: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result frames by their name in the fit record: ``candidates``, ``products``,
        ``categories`` and ``model_fits``."""
        return {
            "candidates": self.selection,
            "products": self.assignments,
            "categories": self.categories,
            "model_fits": self.model_fit,
        }

    def record(self) -> pa.Table:
        """The fit as one row (``results.fit_record``): keys ``fit_name`` ('product_categories'),
        ``cutoff_at``, ``n_training_products`` (stock codes in the fit) and ``n_categories``,
        then the ``tables`` as nested columns."""
        keys = {
            "fit_name": "product_categories",
            "cutoff_at": self.cutoff,
            "n_training_products": int(self.model_fit["n_training_rows"].iloc[0]),
            "n_categories": len(self.categories),
        }
        return fit_record(keys, self.tables())


def assign_categories(
    pipeline: Pipeline, category_of_label: Mapping[int, int], catalogue: pd.DataFrame
) -> np.ndarray:
    """Stable category ids (int64) of the products of ``catalogue`` (a ``description`` column):
    the nearest fitted category of each description."""
    if catalogue.empty:
        return np.empty(0, dtype="int64")
    labels = pipeline.predict(catalogue["description"])
    return np.array([category_of_label[int(label)] for label in labels], dtype="int64")


def _fit_pipeline(
    training: pd.DataFrame, settings: Mapping[str, Any]
) -> tuple[Pipeline, pd.DataFrame]:
    """Score the candidate k on the training catalogue and fit the final pipeline at the
    selected k. Returns ``(fitted pipeline, selection table)``."""
    features = build_text_features(
        settings["n_components"], settings["min_df"], settings["random_state"]
    )
    vectors = fit_text_features(features, training["description"])
    kmeans, selection = select_kmeans(
        vectors,
        stage="product_categories",
        k_range=settings["k_range"],
        n_clusters=settings["n_clusters"],
        random_state=settings["random_state"],
        n_init=settings["n_init"],
    )
    pipeline = Pipeline([*features.steps, ("kmeans", kmeans)]).fit(training["description"])
    return pipeline, selection.loc[:, list(SELECTION_COLUMNS)]


def categorize_products(
    lines: pd.DataFrame, cutoff: str | pd.Timestamp, config: Mapping[str, Any] | None = None
) -> ProductCategories:
    """Fit the product categories on the lines before ``cutoff`` and assign every product.

    Parameters
    ----------
    lines : cleaned sales lines with ``stock_code, description, unit_price, invoice_at``, or
        the same lines grouped with this cutoff (``LINE_GROUP_COLUMNS``; same result), in any
        order.
    cutoff : lines strictly before it train the categories; later lines are only assigned.
    config : the ``product_categories`` meta block (``ProductCategorySettings``; None: defaults).

    Returns
    -------
    ``ProductCategories``. In ``assignments`` every stock code of ``lines`` appears once:
    ``assignment_method`` is 'fit' for products with a line before the cutoff (their category is
    their cluster, from the catalogue of their training lines) and 'nearest_category' for
    products first sold on or after it (the fitted pipeline's ``predict`` on the catalogue of
    their own lines). ``model_fit`` records the training window: the first and last
    ``invoice_at`` of the lines the fit saw (the last is before the cutoff).
    """
    settings = product_settings(config).as_dict()
    cutoff = pd.Timestamp(cutoff)
    groups = _as_line_groups(lines, cutoff)
    training_lines = groups.loc[groups["is_before_cutoff"].astype("bool")]
    if training_lines.empty:
        raise ValueError(f"no sales lines before the cutoff {cutoff}")
    training = product_catalogue(training_lines)
    later = product_catalogue(groups.loc[~groups["stock_code"].isin(training["stock_code"])])
    with fit_threads(settings["max_threads"]):
        pipeline, selection = _fit_pipeline(training, settings)
        raw_labels = pipeline.named_steps["kmeans"].labels_
        category_ids = stable_category_ids(raw_labels, training["stock_code"])
        mapping = dict(zip(raw_labels.tolist(), category_ids.tolist(), strict=True))
        later_ids = assign_categories(pipeline, mapping, later)
    terms = top_terms(
        pipeline.named_steps["tfidf"],
        training["description"],
        category_ids,
        settings["n_top_terms"],
    )
    labels = category_labels(terms)
    ids = sorted(terms)
    categories = pd.DataFrame(
        {
            "product_category": pd.Series(ids, dtype="int64"),
            "product_category_label": pd.Series([labels[c] for c in ids], dtype="str"),
            "top_terms": pd.Series([", ".join(terms[c]) for c in ids], dtype="str"),
        },
        columns=list(CATEGORY_COLUMNS),
    )
    assignments = pd.concat(
        [
            training.assign(product_category=category_ids, assignment_method="fit"),
            later.assign(product_category=later_ids, assignment_method="nearest_category"),
        ],
        ignore_index=True,
    ).rename(columns={"description": "description_used"})
    assignments = assignments.astype(
        {"product_category": "int64", "assignment_method": "str", "description_used": "str"}
    )
    model_fit = pd.DataFrame(
        {
            "model_name": pd.Series(["product_categories"], dtype="str"),
            "algorithm": pd.Series(["kmeans"], dtype="str"),
            "n_clusters": pd.Series([len(ids)], dtype="int64"),
            "silhouette": selection.loc[selection["is_selected"], "silhouette"].to_numpy(),
            "n_training_rows": pd.Series([len(training)], dtype="int64"),
            "training_unit": pd.Series(["product"], dtype="str"),
            "fit_window_start": [training_lines["first_invoice_at"].min()],
            "fit_window_end": [training_lines["last_invoice_at"].max()],
            "cutoff_at": [cutoff],
        },
        columns=list(MODEL_FIT_COLUMNS),
    )
    return ProductCategories(
        pipeline=pipeline,
        category_of_label=mapping,
        cutoff=cutoff,
        selection=selection,
        assignments=assignments.loc[:, list(ASSIGNMENT_COLUMNS)]
        .sort_values("stock_code", kind="stable")
        .reset_index(drop=True),
        categories=categories,
        model_fit=model_fit,
    )


def product_categories_fit(
    lines: pd.DataFrame, cutoff: str | pd.Timestamp, config: Mapping[str, Any] | None = None
) -> pa.Table:
    """The dbt model ``ml_product_categories_fit``: ``categorize_products`` on the grouped sales
    lines (``int_product_lines__grouped``), as one fit record (``ProductCategories.record``).

    Parameters
    ----------
    lines : the grouped lines (``LINE_GROUP_COLUMNS``) or the sales lines themselves.
    cutoff : ``var('new_customer_cutoff')``; the lines were grouped with it.
    config : the model's ``meta.product_categories`` block.

    Returns
    -------
    One row: the keys and the nested results ``candidates``, ``products``, ``categories`` and
    ``model_fits``, which the contracted SQL models of ``models/ml/products/`` unpack.
    """
    return categorize_products(lines, cutoff, config).record()
