"""Parts I and II of the study: PCA and t-SNE embeddings of the customers' RFM, clustering chosen
by silhouette, and segments named from their profiles. Both stages are fitted on one stratified
sample of at most meta.sampling.sample_size customers (everyone at the real file's scale) and
assign the others. Thin shell over retail_segments.segmentation.

Names follow the customers across retrains: when ml.model_registry holds a segment classifier of
an earlier data window (last month's build), the t-SNE clusters first inherit the names it
predicts for their customers (retail_segments.naming.inherit_names). The registry is read
directly (retail_segments.artifacts.previous_registered_model), not through ref: it is
downstream of this model.

Returns the four result tables stacked (retail_segments.tables.stack_tables); the contracted SQL
models cluster_model_selection, embedding_summary, customer_embeddings and cluster_profiles select
them back out.
"""

from retail_segments.artifacts import previous_registered_model
from retail_segments.naming import load_archetypes
from retail_segments.segmentation import combine_stages, run_pca_stage, run_tsne_stage
from retail_segments.tables import stack_tables


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
    sampling = settings.get("sampling")
    pca = run_pca_stage(rfm, archetypes, settings.get("pca"), sampling)
    tsne = run_tsne_stage(rfm, archetypes, settings.get("tsne"), sampling, previous)
    return stack_tables(combine_stages(pca, tsne))
