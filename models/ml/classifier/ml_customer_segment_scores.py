"""Every customer's part II segment: clustered customers keep their cluster's name; outliers,
DBSCAN noise and any customer not in the clustering are scored by the classifier, loaded from
ml.model_registry (skops, type allowlist) at the version this build trained.

One row per customer of marts.customer_rfm. Thin shell over retail_segments.ml.classifier.
"""

from retail_segments.ml import assign_segments, current_model_version, load_registered_model


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = dbt.ref("customer_rfm").project("customer_id, recency_days, frequency, monetary").df()
    segments = dbt.ref("customer_embeddings").project("customer_id, tsne_segment_name").df()
    version = current_model_version(dbt.ref("ml_segment_classifier_fit"))
    estimator = load_registered_model(dbt.ref("model_registry"), version)
    assigned = assign_segments(rfm, segments, estimator, segment_column="tsne_segment_name")
    assigned["model_version"] = version
    return assigned
