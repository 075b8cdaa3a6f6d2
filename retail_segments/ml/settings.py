"""The settings of every dbt Python model's ``meta`` block, and which model takes which.

Each feature's settings model (its keys, types, bounds, defaults and meanings) lives here rather
than beside the feature's code, so that checking the meta blocks before a build
(`retail_segments.ops.settings.check_model_meta`, run by ``prepare``) needs pydantic only, not
scikit-learn: a refused setting is reported in a fraction of a second. The feature modules import
their settings from here (``segmentation.SETTINGS`` is ``SEGMENTATION_SETTINGS``, and so on).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import Field, StrictFloat, StrictInt

from retail_segments.ml.config import (
    Flag,
    KRange,
    Number,
    SamplingSettings,
    Seed,
    SettingsModel,
    Share,
    Threads,
)

# Share of a cluster the previous model's segment must hold for the cluster to inherit its name
# (`retail_segments.ml.naming.inherit_names`).
DEFAULT_MIN_OVERLAP = 0.5

# --------------------------------------------------------------------------------------------
# segmentation (ml_segmentation_pca_fit, ml_segmentation_tsne_fit)
# --------------------------------------------------------------------------------------------

_PositiveInt = Annotated[StrictInt, Field(ge=1)]


class StageSettings(SettingsModel):
    """Settings both stages share (``meta.pca`` / ``meta.tsne`` of the stage models)."""

    algorithm: Literal["kmeans", "gaussian_mixture", "agglomerative", "dbscan"] | None = Field(
        None,
        description="Pin the clustering algorithm; null selects the highest silhouette of all.",
    )
    n_clusters: Annotated[StrictInt, Field(ge=2)] | None = Field(
        None, description="Pin the number of clusters; null selects it by silhouette."
    )
    include_dbscan: Flag = Field(True, description="Also run DBSCAN as a candidate.")
    random_state: Seed = Field(42, description="Seed of KMeans and the Gaussian mixture.")
    n_init: _PositiveInt = Field(10, description="KMeans restarts.")
    dbscan_min_samples: Annotated[StrictInt, Field(ge=2)] = Field(
        4, description="DBSCAN's min_samples (its eps follows from it, clustering.dbscan_eps)."
    )
    dbscan_core_fraction: Share = Field(
        0.9, description="Share of the points that are DBSCAN core points (sets eps)."
    )
    max_threads: Threads = Field(
        1,
        description=(
            "OpenMP threads during the stage (threadpoolctl; BLAS runs on one thread, "
            "ml.threads); null = the library default. "
            "Results do not depend on it; with dbt running models in parallel on two cores, "
            "multi-threaded t-SNE/KMeans were several times slower than one thread."
        ),
    )


class PcaSettings(StageSettings):
    """Part I (``ml_segmentation_pca_fit.meta.pca``)."""

    k_range: KRange = Field(
        (2, 10), description="Inclusive [min, max] clusters for KMeans and the Gaussian mixture."
    )
    agglomerative_k_range: KRange = Field(
        (2, 10), description="Inclusive [min, max] clusters for the agglomerative (ward) tree."
    )


class TsneSettings(StageSettings):
    """Part II (``ml_segmentation_tsne_fit.meta.tsne``)."""

    k_range: KRange = Field(
        (3, 8), description="Inclusive [min, max] clusters for KMeans and the Gaussian mixture."
    )
    agglomerative_k_range: KRange = Field(
        (2, 8), description="Inclusive [min, max] clusters for the agglomerative (ward) tree."
    )
    perplexity: Annotated[Number, Field(gt=0)] = Field(50.0, description="t-SNE perplexity.")
    embedding_random_state: Seed = Field(100, description="Seed of the t-SNE embedding.")
    n_jobs: Annotated[StrictInt, Field(ge=-1)] | None = Field(
        None, description="t-SNE's neighbour-search workers (does not change the result)."
    )
    assign_neighbors: _PositiveInt = Field(
        10,
        description=(
            "Fitted customers that place a customer outside the fit sample (distance-weighted)."
        ),
    )
    inherit_min_overlap: Share = Field(
        DEFAULT_MIN_OVERLAP,
        description=(
            "Share of a cluster the previous model's segment must hold for the cluster to "
            "inherit its name (naming.inherit_names)."
        ),
    )
    # Measured on the real file: 23.2 s with one thread, 14.8 s with two, bit-identical
    # coordinates; in the build the other dbt thread is mostly running light tests meanwhile.
    embedding_max_threads: Threads = Field(
        2,
        description=(
            "OpenMP threads of the t-SNE fit alone (its result does not depend on them); null = "
            "the library default."
        ),
    )


# The fit sample both stages share (meta.sampling, one YAML anchor in the yml) is
# config.SamplingSettings. Its default 5,000 is the smallest round size above the real file's
# 4,372 customers, so the study's results are unchanged. Measured on the 2-core machine from
# 4,000 to 8,000 customers, one t-SNE fit took 2.5 times as long, one ward tree 3.7 times and one
# silhouette 3 times; with the sample the fit costs what it costs on the real file at every
# scale, and only the assignment grows (linear).
SEGMENTATION_SETTINGS: dict[str, type[SettingsModel]] = {
    "pca": PcaSettings,
    "tsne": TsneSettings,
    "sampling": SamplingSettings,
}


# --------------------------------------------------------------------------------------------
# segment classifier (ml_segment_classifier_fit)
# --------------------------------------------------------------------------------------------


class ClassifierSettings(SettingsModel):
    """The classifier search (``ml_segment_classifier_fit.meta.classifier``)."""

    search: Literal["fast", "full"] = Field(
        "fast",
        description="fast: small grids of cheap models; full: the study's whole grids (slow).",
    )
    test_size: Annotated[StrictFloat, Field(gt=0, lt=1)] = Field(
        0.2, description="Share of the customers held out as the test split."
    )
    random_state: Seed = Field(42, description="Seed of the split and of every estimator.")
    cv: Annotated[StrictInt, Field(ge=2)] = Field(5, description="Cross-validation folds.")
    n_jobs: StrictInt | None = Field(
        2, description="GridSearchCV worker processes (joblib's n_jobs); null = one."
    )
    max_threads: Threads = Field(
        1,
        description=(
            "OpenMP threads in this process (threadpoolctl; BLAS runs on one thread, "
            "ml.threads); null = the library default. "
            "The workers of n_jobs already get one thread each."
        ),
    )


CLASSIFIER_SETTINGS: dict[str, type[SettingsModel]] = {"classifier": ClassifierSettings}


# --------------------------------------------------------------------------------------------
# product categories (ml_product_categories_fit)
# --------------------------------------------------------------------------------------------


class ProductCategorySettings(SettingsModel):
    """The ``product_categories`` meta block of the dbt model ``ml_product_categories_fit``."""

    k_range: KRange = Field((5, 12), description="[k_min, k_max]: numbers of categories tried")
    n_clusters: Annotated[StrictInt, Field(ge=2)] | None = Field(
        None, description="pin the number of categories (null: the best silhouette of k_range)"
    )
    n_components: Annotated[StrictInt, Field(ge=2)] = Field(
        10, description="LSA topics (TruncatedSVD components) of the TF-IDF features"
    )
    min_df: Annotated[StrictInt, Field(ge=1)] = Field(
        2, description="products a term must appear in to be a feature"
    )
    n_top_terms: Annotated[StrictInt, Field(ge=3)] = Field(
        10, description="most characteristic terms listed per category (the label takes three)"
    )
    random_state: Seed = Field(42, description="seed of the SVD and of KMeans")
    n_init: Annotated[StrictInt, Field(ge=1)] = Field(10, description="KMeans restarts per k")
    max_threads: Threads = Field(
        1, description="OpenMP threads during the fit (BLAS runs on one thread)"
    )


PRODUCT_SETTINGS: dict[str, type[SettingsModel]] = {"product_categories": ProductCategorySettings}


# --------------------------------------------------------------------------------------------
# customer interests (ml_customer_interest_fit)
# --------------------------------------------------------------------------------------------


class InterestSettings(SettingsModel):
    """The ``customer_interests`` meta block of the dbt model ``ml_customer_interest_fit``."""

    k_range: KRange = Field((3, 8), description="[k_min, k_max]: numbers of interests tried")
    n_clusters: Annotated[StrictInt, Field(ge=2)] | None = Field(
        None, description="pin the number of interests (null: the best silhouette of k_range)"
    )
    focus_lift: Annotated[Number, Field(ge=1)] = Field(
        1.5,
        description="times the average spend share a product category must reach in an "
        "interest to name the interest after it",
    )
    n_estimators: Annotated[StrictInt, Field(ge=1)] = Field(
        100, description="trees of the new-customer random forest"
    )
    min_samples_leaf: Annotated[StrictInt, Field(ge=1)] = Field(
        3, description="fewest training rows in a leaf of the random forest"
    )
    random_state: Seed = Field(42, description="seed of KMeans and of the random forest")
    n_init: Annotated[StrictInt, Field(ge=1)] = Field(10, description="KMeans restarts per k")
    max_threads: Threads = Field(
        1, description="OpenMP threads during the fits (BLAS runs on one thread)"
    )


INTEREST_SETTINGS: dict[str, type[SettingsModel]] = {
    "customer_interests": InterestSettings,
    "sampling": SamplingSettings,
}


# --------------------------------------------------------------------------------------------
# customer value (ml_customer_value_fit, ml_customer_value_scores)
# --------------------------------------------------------------------------------------------


class CustomerValueSettings(SettingsModel):
    """Settings of ``fit_customer_value`` and ``evaluate_customer_value`` (the ``value`` meta
    block of ``ml_customer_value_fit``; the monthly discount rate comes from the var
    ``clv_monthly_discount_rate``)."""

    horizon_days: StrictInt = Field(
        90,
        ge=1,
        description="days ahead for expected purchases and the no-purchase probability; the"
        " output columns are named after it (expected_purchases_90d)",
    )
    clv_months: StrictInt = Field(12, ge=1, description="months of the CLV (column clv_12m)")
    monthly_discount_rate: Number = Field(
        0.01, ge=0, lt=1, description="discount rate d per month: month m is divided by (1+d)**m"
    )
    month_days: Number = Field(
        365.0 / 12.0, gt=0, description="length of a CLV month in days (12 months = 365 days)"
    )
    holdout_days: StrictInt = Field(
        91, ge=1, description="length of the evaluation's holdout after clv_calibration_end"
    )
    customer_column: str = Field("customer_id", min_length=1, description="customer column")
    time_column: str = Field("invoice_at", min_length=1, description="purchase time column")
    amount_column: str = Field("total_price", min_length=1, description="amount column")

    @property
    def purchases_column(self) -> str:
        """Name of the expected purchases column, e.g. ``expected_purchases_90d``."""
        return f"expected_purchases_{self.horizon_days}d"

    @property
    def no_purchase_column(self) -> str:
        """Name of the no-purchase probability column, e.g. ``prob_no_purchase_90d``."""
        return f"prob_no_purchase_{self.horizon_days}d"

    @property
    def clv_column(self) -> str:
        """Name of the CLV column, e.g. ``clv_12m``."""
        return f"clv_{self.clv_months}m"


VALUE_SETTINGS: dict[str, type[SettingsModel]] = {"value": CustomerValueSettings}


# What each dbt Python model's meta block may hold: settings blocks (validated by their settings
# model) and the vars it passes through (rendered by dbt, checked as vars by
# retail_segments.ops.settings). `retail_segments.ops.preflight` checks every block before a build.
MODEL_META: MappingProxyType[str, tuple[dict[str, type[SettingsModel]], frozenset[str]]] = (
    MappingProxyType(
        {
            "ml_segmentation_pca_fit": (
                {key: SEGMENTATION_SETTINGS[key] for key in ("pca", "sampling")},
                frozenset(),
            ),
            "ml_segmentation_tsne_fit": (
                {key: SEGMENTATION_SETTINGS[key] for key in ("tsne", "sampling")},
                frozenset(),
            ),
            "ml_segment_classifier_fit": (CLASSIFIER_SETTINGS, frozenset()),
            "ml_product_categories_fit": (PRODUCT_SETTINGS, frozenset({"new_customer_cutoff"})),
            "ml_customer_interest_fit": (INTEREST_SETTINGS, frozenset({"new_customer_cutoff"})),
            "ml_customer_value_fit": (
                VALUE_SETTINGS,
                frozenset({"rfm_as_of", "calibration_end", "monthly_discount_rate"}),
            ),
            "ml_customer_value_scores": (
                VALUE_SETTINGS,
                frozenset({"rfm_as_of", "calibration_end", "monthly_discount_rate"}),
            ),
        }
    )
)
