"""Part II of the study: t-SNE of the customers' standardised RFM, clustering chosen by
silhouette, and segments named. Fitted on one stratified sample of at most
meta.sampling.sample_size customers (shared with ml_segmentation_pca_fit; everyone at the real
file's scale), the others assigned.

Names follow the customers across retrains: when ml.model_registry holds a published segment
classifier of an earlier data window (last month's build), the clusters first inherit the names
it predicts for their customers (retail_segments.ml.naming.inherit_names). The registry is read
through ml.previous_model_registry, a view that reads its published versions by name (it is
downstream of this model: a ref would be a cycle) and is empty on the first build and on
--full-refresh: then there is no previous model.

Returns one row per fit (key: stage) with the results customers, candidates, embedding_summary
and clusters as nested columns; the contracted SQL models customer_embeddings,
cluster_model_selection, embedding_summary and cluster_profiles unpack them. Thin shell over
retail_segments.ml.segmentation.fit_tsne_stage.
"""

from retail_segments.frames import frame
from retail_segments.ml import fit_tsne_stage


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = frame(
        dbt.ref("customer_rfm"),
        ["customer_id", "recency_days", "frequency", "monetary", "is_outlier", "rfm_as_of"],
        order_by=["customer_id"],
    )
    archetypes = frame(dbt.ref("segment_archetypes"), order_by=["stage", "segment_name"])
    registry = frame(
        dbt.ref("previous_model_registry"),
        ["model_name", "model_version", "data_window_end", "artifact"],
    )
    return fit_tsne_stage(rfm, archetypes, dbt.config.get("meta"), registry)
