"""Every customer's part II segment: clustered customers keep their cluster's name; outliers,
DBSCAN noise and any customer not in the clustering are scored by the classifier, loaded from
ml.model_registry (skops, type allowlist) at the version this build trained.

One row per customer of marts.customer_rfm (key: customer_id). Thin shell over
retail_segments.ml.classifier.segment_scorer, applied with retail_segments.frames.map_frames.
"""

from retail_segments.frames import frame, join, map_frames, select
from retail_segments.ml import SCORE_SCHEMA, SCORING_INPUT_COLUMNS, segment_scorer


def model(dbt, session):
    dbt.config(materialized="table")
    fit = frame(dbt.ref("ml_segment_classifier_fit"), ["model_version"])
    registry = frame(dbt.ref("model_registry"), ["model_version", "artifact"])
    customers = join(
        select(dbt.ref("customer_rfm"), ["customer_id", "recency_days", "frequency", "monetary"]),
        select(dbt.ref("customer_embeddings"), ["customer_id", "tsne_segment_name"]),
        on=["customer_id"],
    )
    # on Spark the customers are scored in parallel (mapInPandas), on DuckDB in one batch
    return map_frames(
        customers,
        segment_scorer(fit, registry),
        SCORE_SCHEMA,
        columns=SCORING_INPUT_COLUMNS,
        order_by=["customer_id"],
    )
