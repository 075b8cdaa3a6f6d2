{#-
  One row per clustered customer: both stages' coordinates, cluster ids and names side by side.
  The two stages are fitted by separate Python models on the same customers and the same fit
  sample (tests/dbt/assert_segmentation_stages_embed_the_same_customers.sql checks it).
-#}
with

pca_fit as (

    select * from {{ ref('ml_segmentation_pca_fit') }}
    where result_table = 'customer_embeddings'

),

tsne_fit as (

    select * from {{ ref('ml_segmentation_tsne_fit') }}
    where result_table = 'customer_embeddings'

),

final as (

    select
        cast(pca_fit.customer_id as integer) as customer_id,
        cast(pca_fit.pca_1 as double) as pca_1,
        cast(pca_fit.pca_2 as double) as pca_2,
        cast(tsne_fit.tsne_1 as double) as tsne_1,
        cast(tsne_fit.tsne_2 as double) as tsne_2,
        cast(pca_fit.pca_cluster_id as integer) as pca_cluster_id,
        cast(tsne_fit.tsne_cluster_id as integer) as tsne_cluster_id,
        cast(pca_fit.pca_segment_name as varchar) as pca_segment_name,
        cast(tsne_fit.tsne_segment_name as varchar) as tsne_segment_name,
        cast(pca_fit.is_fit_sample as boolean) as is_fit_sample
    from pca_fit
    inner join tsne_fit on tsne_fit.customer_id = pca_fit.customer_id

)

select * from final
