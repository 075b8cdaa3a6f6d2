"""The machine learning that the dbt Python models (``models/ml/<feature>/*.py``) call:
segmentation (PCA and t-SNE stages), segment naming, the segment classifier and its skops
registry, product and customer-interest categories, the segment history, and customer value.

Each dbt Python model imports one entry point from here, which takes the model's inputs as frames
and its meta block and returns its fit record (`retail_segments.ml.results`) or its table. The
submodules are the implementation; tests and notebooks import them directly.
"""

from retail_segments.ml.classifier import fit_segment_classifier, score_customer_segments
from retail_segments.ml.history import measure_retraining_stability, score_segment_history
from retail_segments.ml.interests import customer_interest_fit
from retail_segments.ml.products import product_categories_fit
from retail_segments.ml.segmentation import fit_pca_stage, fit_tsne_stage
from retail_segments.ml.value import customer_value_record

__all__ = [
    "customer_interest_fit",
    "customer_value_record",
    "fit_pca_stage",
    "fit_segment_classifier",
    "fit_tsne_stage",
    "measure_retraining_stability",
    "product_categories_fit",
    "score_customer_segments",
    "score_segment_history",
]
