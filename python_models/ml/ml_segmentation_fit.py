"""Parts I and II of the study: PCA and t-SNE embeddings of the customers' RFM, clustering chosen
by silhouette, and segments named from their profiles. Both stages are fitted on one stratified
sample of at most meta.sampling.sample_size customers (everyone at the real file's scale) and
assign the others. Thin shell over retail_segments.segmentation.

Returns the four result tables stacked (retail_segments.tables.stack_tables); the contracted SQL
models cluster_model_selection, embedding_summary, customer_embeddings and cluster_profiles select
them back out.
"""

from retail_segments.naming import load_archetypes
from retail_segments.segmentation import combine_stages, run_pca_stage, run_tsne_stage
from retail_segments.tables import stack_tables


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    rfm = (
        dbt.ref("customer_rfm")
        .project("customer_id, recency_days, frequency, monetary, is_outlier")
        .df()
    )
    archetypes = load_archetypes(dbt.ref("segment_archetypes").df())
    sampling = settings.get("sampling")
    pca = run_pca_stage(rfm, archetypes, settings.get("pca"), sampling)
    tsne = run_tsne_stage(rfm, archetypes, settings.get("tsne"), sampling)
    return stack_tables(combine_stages(pca, tsne))
