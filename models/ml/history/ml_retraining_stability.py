"""How much a retrain moves customers between segments: the current classifier (the version this
build's ml_segment_classifier_fit trained) against the registry version(s) of the data window just
before it, both scoring this build's marts.customer_rfm. No rows for the first model.

One row per (current version, previous version) (key: model_version, previous_model_version).
Artifacts load through skops with the type allowlist. Thin shell over
retail_segments.ml.history.measure_retraining_stability; ml.retraining_stability keeps the rows.
"""

from retail_segments.ml import measure_retraining_stability


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = (
        dbt.ref("customer_rfm")
        .project("customer_id, recency_days, frequency, monetary, rfm_as_of")
        .df()
    )
    fit = dbt.ref("ml_segment_classifier_fit").project("model_version").df()
    registry = dbt.ref("model_registry").df()
    return measure_retraining_stability(rfm, fit, registry)
