"""The machine learning that the dbt Python models (``models/ml/<feature>/*.py``) call:
segmentation (PCA and t-SNE stages), segment naming, the segment classifier and its skops
registry, product and customer-interest categories, the segment history, and customer value.

Each dbt Python model imports one entry point from here, which takes the model's inputs as frames
and its meta block and returns its fit record (`retail_segments.ml.results`) or its table. The
submodules are the implementation; tests and notebooks import them directly.
"""

from types import MappingProxyType

from retail_segments.ml import classifier, interests, products, segmentation, value
from retail_segments.ml.classifier import (
    SCORE_SCHEMA,
    SCORING_INPUT_COLUMNS,
    fit_segment_classifier,
    score_customer_segments,
    segment_scorer,
)
from retail_segments.ml.config import SettingsModel
from retail_segments.ml.history import (
    HISTORY_SCORE_SCHEMA,
    history_scorer,
    measure_retraining_stability,
    score_segment_history,
)
from retail_segments.ml.interests import CUSTOMER_SCHEMA as INTEREST_CUSTOMER_SCHEMA
from retail_segments.ml.interests import PREDICTION_SCHEMA as INTEREST_PREDICTION_SCHEMA
from retail_segments.ml.interests import category_labels as interest_category_labels
from retail_segments.ml.interests import fit_interest_models
from retail_segments.ml.products import product_categories_fit
from retail_segments.ml.segmentation import fit_pca_stage, fit_tsne_stage
from retail_segments.ml.value import (
    customer_value_record,
    customer_value_schema,
    customer_value_scorer,
)

# What each dbt Python model's meta block may hold: settings blocks (validated by their settings
# model) and the vars it passes through (rendered by dbt, checked as vars by
# retail_segments.ops.settings). `retail_segments.ops.preflight` checks every block before a build.
MODEL_META: MappingProxyType[str, tuple[dict[str, type[SettingsModel]], frozenset[str]]] = (
    MappingProxyType(
        {
            "ml_segmentation_pca_fit": (
                {key: segmentation.SETTINGS[key] for key in ("pca", "sampling")},
                frozenset(),
            ),
            "ml_segmentation_tsne_fit": (
                {key: segmentation.SETTINGS[key] for key in ("tsne", "sampling")},
                frozenset(),
            ),
            "ml_segment_classifier_fit": (classifier.SETTINGS, frozenset()),
            "ml_product_categories_fit": (products.SETTINGS, frozenset({"new_customer_cutoff"})),
            "ml_customer_interest_fit": (interests.SETTINGS, frozenset({"new_customer_cutoff"})),
            "ml_customer_value_fit": (
                value.SETTINGS,
                frozenset({"rfm_as_of", "calibration_end", "monthly_discount_rate"}),
            ),
            "ml_customer_value_scores": (
                value.SETTINGS,
                frozenset({"rfm_as_of", "calibration_end", "monthly_discount_rate"}),
            ),
        }
    )
)

__all__ = [
    "HISTORY_SCORE_SCHEMA",
    "INTEREST_CUSTOMER_SCHEMA",
    "INTEREST_PREDICTION_SCHEMA",
    "MODEL_META",
    "SCORE_SCHEMA",
    "SCORING_INPUT_COLUMNS",
    "customer_value_record",
    "customer_value_schema",
    "customer_value_scorer",
    "fit_interest_models",
    "fit_pca_stage",
    "fit_segment_classifier",
    "fit_tsne_stage",
    "history_scorer",
    "interest_category_labels",
    "measure_retraining_stability",
    "product_categories_fit",
    "score_customer_segments",
    "score_segment_history",
    "segment_scorer",
]
