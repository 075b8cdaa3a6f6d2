"""How much a retrain moves customers between segments: the current classifier (the version this
build's ml_segment_classifier_fit trained) against the registry version(s) of the data window just
before it that a successful build published (ml.model_publications: a failed build's model is no
previous model), both scoring this build's marts.customer_rfm. No rows for the first model.

One row per (current version, previous version) (key: model_version, previous_model_version).
Artifacts load through skops with the type allowlist. Thin shell over
retail_segments.ml.history.measure_retraining_stability; ml.retraining_stability keeps the rows.
"""

from retail_segments.frames import frame
from retail_segments.ml import measure_retraining_stability


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = frame(
        dbt.ref("customer_rfm"),
        ["customer_id", "recency_days", "frequency", "monetary", "rfm_as_of"],
        order_by=["customer_id"],
    )
    fit = frame(dbt.ref("ml_segment_classifier_fit"), ["model_version"])
    registry = frame(
        dbt.ref("model_registry"),
        ["model_name", "model_version", "data_window_end", "artifact"],
        order_by=["model_version"],
    )
    published = frame(dbt.ref("model_publications"), ["model_version"])
    return measure_retraining_stability(rfm, fit, registry, published)
