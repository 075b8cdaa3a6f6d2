{#-
  One row per clustered customer: both stages' coordinates, cluster ids and names side by side.
  The two stages are fitted by separate Python models on the same customers and the same fit
  sample (tests/dbt/assert_segmentation_stages_embed_the_same_customers.sql checks it).
-#}
with

pca_customers as (

    select * from {{ fit_result('ml_segmentation_pca_fit', 'customers', columns=[
        'customer_id', 'pca_1', 'pca_2', 'pca_cluster_id', 'pca_segment_name', 'is_fit_sample'
    ]) }}

),

tsne_customers as (

    select * from {{ fit_result('ml_segmentation_tsne_fit', 'customers', columns=[
        'customer_id', 'tsne_1', 'tsne_2', 'tsne_cluster_id', 'tsne_segment_name'
    ]) }}

),

final as (

    select
        pca_customers.customer_id,
        pca_customers.pca_1,
        pca_customers.pca_2,
        tsne_customers.tsne_1,
        tsne_customers.tsne_2,
        pca_customers.pca_cluster_id,
        tsne_customers.tsne_cluster_id,
        pca_customers.pca_segment_name,
        tsne_customers.tsne_segment_name,
        pca_customers.is_fit_sample
    from pca_customers
    inner join tsne_customers on pca_customers.customer_id = tsne_customers.customer_id

)

select * from final
