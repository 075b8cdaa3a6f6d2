"""The part II segment of every customer at every as-of date of the RFM history, all predicted by
the registry's current classifier: the version this build's ml_segment_classifier_fit trained
(the one marts.customer_segments uses), loaded from ml.model_registry through skops with the type
allowlist. A backfill never retrains: it only adds RFM dates, and every date is scored again here.

One row per customer and as-of date of int_customer_rfm__history (key: customer_id, rfm_as_of).
Thin shell over retail_segments.ml.history.history_scorer, applied with
retail_segments.frames.map_frames.
"""

from retail_segments.frames import frame, map_frames
from retail_segments.ml import HISTORY_SCORE_SCHEMA, history_scorer


def model(dbt, session):
    dbt.config(materialized="table")
    fit = frame(dbt.ref("ml_segment_classifier_fit"), ["model_version"])
    registry = frame(dbt.ref("model_registry"), ["model_version", "artifact"])
    # on Spark the rows are scored in parallel (mapInPandas), on DuckDB in one batch
    return map_frames(
        dbt.ref("int_customer_rfm__history"),
        history_scorer(fit, registry),
        HISTORY_SCORE_SCHEMA,
        columns=["customer_id", "rfm_as_of", "recency_days", "frequency", "monetary"],
        order_by=["rfm_as_of", "customer_id"],
    )
