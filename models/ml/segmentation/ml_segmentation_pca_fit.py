"""Part I of the study: PCA of the customers' standardised RFM, clustering chosen by silhouette,
and clusters named from their profiles. Fitted on the same stratified sample as part II
(meta.sampling, shared with ml_segmentation_tsne_fit; everyone at the real file's scale), the
other customers assigned. A model of its own so that it runs beside the slower t-SNE stage.
Thin shell over retail_segments.ml.segmentation.

Returns the stage's four result tables stacked (retail_segments.ml.tables.stack_tables); the
contracted SQL models cluster_model_selection, embedding_summary, customer_embeddings and
cluster_profiles combine them with part II's.
"""

from retail_segments.ml import load_archetypes, run_pca_stage, stack_tables


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    rfm = (
        dbt.ref("customer_rfm")
        .project("customer_id, recency_days, frequency, monetary, is_outlier")
        .df()
    )
    archetypes = load_archetypes(dbt.ref("segment_archetypes").df())
    return stack_tables(
        run_pca_stage(rfm, archetypes, settings.get("pca"), settings.get("sampling"))
    )
