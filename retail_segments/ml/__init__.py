"""The machine learning that the dbt Python models (``models/ml/<feature>/*.py``) call:
segmentation (PCA and t-SNE stages), segment naming, the segment classifier and its skops
registry, product and customer-interest categories, the segment history, and customer value.

Each dbt Python model imports one entry point from here, which takes the model's inputs as frames
and its meta block and returns its fit record (`retail_segments.ml.results`) or its table. The
submodules are the implementation; tests and notebooks import them directly.

The entry points are imported on first use (PEP 562), so that importing this package, or its
import-light `retail_segments.ml.settings` (every meta block's settings and ``MODEL_META``, which
``prepare`` checks before a build), does not load scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from retail_segments.ml.settings import MODEL_META

if TYPE_CHECKING:
    from retail_segments.ml.classifier import (
        SCORE_SCHEMA,
        SCORING_INPUT_COLUMNS,
        fit_segment_classifier,
        score_customer_segments,
        segment_scorer,
    )
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

# name in this package -> (submodule, name there)
_ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "SCORE_SCHEMA": ("classifier", "SCORE_SCHEMA"),
    "SCORING_INPUT_COLUMNS": ("classifier", "SCORING_INPUT_COLUMNS"),
    "fit_segment_classifier": ("classifier", "fit_segment_classifier"),
    "score_customer_segments": ("classifier", "score_customer_segments"),
    "segment_scorer": ("classifier", "segment_scorer"),
    "HISTORY_SCORE_SCHEMA": ("history", "HISTORY_SCORE_SCHEMA"),
    "history_scorer": ("history", "history_scorer"),
    "measure_retraining_stability": ("history", "measure_retraining_stability"),
    "score_segment_history": ("history", "score_segment_history"),
    "INTEREST_CUSTOMER_SCHEMA": ("interests", "CUSTOMER_SCHEMA"),
    "INTEREST_PREDICTION_SCHEMA": ("interests", "PREDICTION_SCHEMA"),
    "interest_category_labels": ("interests", "category_labels"),
    "fit_interest_models": ("interests", "fit_interest_models"),
    "product_categories_fit": ("products", "product_categories_fit"),
    "fit_pca_stage": ("segmentation", "fit_pca_stage"),
    "fit_tsne_stage": ("segmentation", "fit_tsne_stage"),
    "customer_value_record": ("value", "customer_value_record"),
    "customer_value_schema": ("value", "customer_value_schema"),
    "customer_value_scorer": ("value", "customer_value_scorer"),
}


def __getattr__(name: str) -> Any:
    """Import an entry point's submodule the first time the entry point is used."""
    try:
        module, attribute = _ENTRY_POINTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_ENTRY_POINTS})


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
