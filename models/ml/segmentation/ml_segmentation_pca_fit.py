"""Part I of the study: PCA of the customers' standardised RFM, clustering chosen by silhouette,
and clusters named from their profiles. Fitted on the same stratified sample as part II
(meta.sampling, shared with ml_segmentation_tsne_fit; everyone at the real file's scale), the
other customers assigned. A model of its own so that it runs beside the slower t-SNE stage.

Returns one row per fit (key: stage) with the results customers, candidates, embedding_summary
and clusters as nested columns; the contracted SQL models customer_embeddings,
cluster_model_selection, embedding_summary and cluster_profiles unpack them. Thin shell over
retail_segments.ml.segmentation.fit_pca_stage.
"""

from retail_segments.frames import frame
from retail_segments.ml import fit_pca_stage


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = frame(
        dbt.ref("customer_rfm"),
        ["customer_id", "recency_days", "frequency", "monetary", "is_outlier", "rfm_as_of"],
        order_by=["customer_id"],
    )
    archetypes = frame(dbt.ref("segment_archetypes"), order_by=["stage", "segment_name"])
    return fit_pca_stage(rfm, archetypes, dbt.config.get("meta"))
