"""The part II segment of every customer at every as-of date of the RFM history, all predicted by
the registry's current classifier: the version this build's ml_segment_classifier_fit trained
(the one marts.customer_segments uses), loaded from ml.model_registry through skops with the type
allowlist. A backfill never retrains: it only adds RFM dates, and every date is scored again here.

One row per customer and as-of date of int_customer_rfm__history (key: customer_id, rfm_as_of).
Thin shell over retail_segments.ml.history.score_segment_history.
"""

from retail_segments.ml import score_segment_history


def model(dbt, session):
    dbt.config(materialized="table")
    rfm_history = (
        dbt.ref("int_customer_rfm__history")
        .project("customer_id, rfm_as_of, recency_days, frequency, monetary")
        .df()
    )
    fit = dbt.ref("ml_segment_classifier_fit").project("model_version").df()
    registry = dbt.ref("model_registry").df()
    return score_segment_history(rfm_history, fit, registry)
