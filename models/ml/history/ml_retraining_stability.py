"""How much a retrain moves customers between segments: the current classifier (the version this
build's ml_segment_classifier_fit trained) against the registry version(s) of the data window just
before it, both scoring this build's marts.customer_rfm. No rows for the first model.

One row per (current version, previous version). Artifacts load through skops with the type
allowlist. Thin shell over retail_segments.ml.history; ml.retraining_stability keeps the rows.
"""

from retail_segments.ml import current_model_version, retraining_stability


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = (
        dbt.ref("customer_rfm")
        .project("customer_id, recency_days, frequency, monetary, rfm_as_of")
        .df()
    )
    version = current_model_version(dbt.ref("ml_segment_classifier_fit"))
    registry = (
        dbt.ref("model_registry")
        .filter("model_name = 'segment_classifier'")
        .project("model_version, data_window_end, artifact")
        .df()
    )
    return retraining_stability(rfm, registry, version)
