"""The machine learning that the dbt Python models (``models/ml/<feature>/*.py``) call:
segmentation (PCA and t-SNE stages), segment naming, the segment classifier and its skops
registry, product and customer-interest categories, the segment history, and customer value.
Models import from here; the submodules are the implementation.
"""

from retail_segments.ml.artifacts import (
    build_model_registry_row,
    current_model_version,
    load_registered_model,
    previous_registered_model,
)
from retail_segments.ml.classifier import (
    assign_segments,
    fit_segment_classifier,
    score_customer_segments,
    train_segment_classifier,
)
from retail_segments.ml.history import (
    classify_history,
    measure_retraining_stability,
    retraining_stability,
    score_segment_history,
)
from retail_segments.ml.interests import customer_interest_fit, fit_customer_interests
from retail_segments.ml.naming import load_archetypes
from retail_segments.ml.products import categorize_products, product_categories_fit
from retail_segments.ml.segmentation import (
    fit_pca_stage,
    fit_tsne_stage,
    run_pca_stage,
    run_tsne_stage,
)
from retail_segments.ml.tables import stack_tables
from retail_segments.ml.value import customer_value_record

__all__ = [
    "assign_segments",
    "build_model_registry_row",
    "categorize_products",
    "classify_history",
    "current_model_version",
    "customer_interest_fit",
    "customer_value_record",
    "fit_customer_interests",
    "fit_pca_stage",
    "fit_segment_classifier",
    "fit_tsne_stage",
    "load_archetypes",
    "load_registered_model",
    "measure_retraining_stability",
    "previous_registered_model",
    "product_categories_fit",
    "retraining_stability",
    "run_pca_stage",
    "run_tsne_stage",
    "score_customer_segments",
    "score_segment_history",
    "stack_tables",
    "train_segment_classifier",
]
