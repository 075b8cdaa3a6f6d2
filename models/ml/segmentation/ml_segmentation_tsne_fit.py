"""Part II of the study: t-SNE of the customers' standardised RFM, clustering chosen by
silhouette, and segments named. Fitted on one stratified sample of at most
meta.sampling.sample_size customers (shared with ml_segmentation_pca_fit; everyone at the real
file's scale), the others assigned. Thin shell over retail_segments.ml.segmentation.

Names follow the customers across retrains: when ml.model_registry holds a segment classifier of
an earlier data window (last month's build), the clusters first inherit the names it predicts
for their customers (retail_segments.ml.naming.inherit_names). The registry is read directly
(retail_segments.ml.artifacts.previous_registered_model), not through ref: it is downstream of this
model.

Returns the stage's four result tables stacked (retail_segments.ml.tables.stack_tables); the
contracted SQL models cluster_model_selection, embedding_summary, customer_embeddings and
cluster_profiles combine them with part I's.
"""

from retail_segments.ml import (
    load_archetypes,
    previous_registered_model,
    run_tsne_stage,
    stack_tables,
)


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    rfm_relation = dbt.ref("customer_rfm")
    rfm = rfm_relation.project("customer_id, recency_days, frequency, monetary, is_outlier").df()
    previous = previous_registered_model(
        session,
        database=dbt.this.database,
        schema=dbt.this.schema,
        model_name="segment_classifier",
        before=rfm_relation.aggregate("max(rfm_as_of)").fetchall()[0][0],
    )
    archetypes = load_archetypes(dbt.ref("segment_archetypes").df())
    tsne = run_tsne_stage(rfm, archetypes, settings.get("tsne"), settings.get("sampling"), previous)
    return stack_tables(tsne)
