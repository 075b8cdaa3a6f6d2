"""Every customer's part II segment: clustered customers keep their cluster's name; outliers,
DBSCAN noise and any customer not in the clustering are scored by the classifier, loaded from
ml.model_registry (skops, type allowlist) at the version this build trained.

One row per customer of marts.customer_rfm (key: customer_id). Thin shell over
retail_segments.ml.classifier.score_customer_segments.
"""

from retail_segments.ml import score_customer_segments


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = dbt.ref("customer_rfm").project("customer_id, recency_days, frequency, monetary").df()
    embeddings = dbt.ref("customer_embeddings").project("customer_id, tsne_segment_name").df()
    fit = dbt.ref("ml_segment_classifier_fit").project("model_version").df()
    registry = dbt.ref("model_registry").df()
    return score_customer_segments(rfm, embeddings, fit, registry)
