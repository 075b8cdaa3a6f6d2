"""Part III of the study: the classifier that assigns a part II segment from R, F and M.

Searches RandomForest and GradientBoosting (fast search by default, the study's full grids with
meta.classifier.search = 'full'), keeps the better, and serialises it with skops into a registry
row. Only the customers the clustering was fitted on (is_fit_sample) are trained and tested on.
Thin shell over retail_segments.ml.classifier and retail_segments.ml.artifacts; returns the metric
tables and the registry row stacked (retail_segments.ml.tables.stack_tables).
"""

from retail_segments.ml import build_model_registry_row, stack_tables, train_segment_classifier


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    rfm_relation = dbt.ref("customer_rfm")
    rfm = rfm_relation.project("customer_id, recency_days, frequency, monetary").df()
    segments = (
        dbt.ref("customer_embeddings").project("customer_id, tsne_segment_name, is_fit_sample").df()
    )
    as_of = rfm_relation.aggregate("max(rfm_as_of)").fetchall()[0][0]
    window_start = dbt.ref("fct_sales_lines").aggregate("min(invoice_at)").fetchall()[0][0]

    result = train_segment_classifier(
        rfm, segments, settings.get("classifier"), segment_column="tsne_segment_name"
    )
    selected = result.metrics.loc[result.metrics["is_selected"]].iloc[0]
    registry = build_model_registry_row(
        result.estimator,
        model_name="segment_classifier",
        metrics={
            "model": result.model_name,
            "search": selected["search"],
            "cv_accuracy": selected["cv_accuracy"],
            "test_accuracy": selected["test_accuracy"],
            "n_test": selected["n_test"],
        },
        training_seconds=result.fit_seconds,
        n_training_rows=result.n_training_rows,
        data_window_start=window_start,
        data_window_end=as_of,
        created_at=as_of,
    )
    return stack_tables({**result.frames(), "model_registry": registry})
