with

fit as (

    select * from {{ ref('ml_segmentation_fit') }}
    where result_table = 'customer_embeddings'

),

final as (

    select
        cast(customer_id as integer) as customer_id,
        cast(pca_1 as double) as pca_1,
        cast(pca_2 as double) as pca_2,
        cast(tsne_1 as double) as tsne_1,
        cast(tsne_2 as double) as tsne_2,
        cast(pca_cluster_id as integer) as pca_cluster_id,
        cast(tsne_cluster_id as integer) as tsne_cluster_id,
        cast(pca_segment_name as varchar) as pca_segment_name,
        cast(tsne_segment_name as varchar) as tsne_segment_name,
        cast(is_fit_sample as boolean) as is_fit_sample
    from fit

)

select * from final
