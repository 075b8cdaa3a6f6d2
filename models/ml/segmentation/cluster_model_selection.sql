with

pca_fit as (

    select * from {{ ref('ml_segmentation_pca_fit') }}
    where result_table = 'cluster_model_selection'

),

tsne_fit as (

    select * from {{ ref('ml_segmentation_tsne_fit') }}
    where result_table = 'cluster_model_selection'

),

fit as (

    select * from pca_fit
    union all by name
    select * from tsne_fit

),

final as (

    select
        cast(stage as varchar) as stage,
        cast(algorithm as varchar) as algorithm,
        cast(n_clusters as integer) as n_clusters,
        cast(silhouette as double) as silhouette,
        cast(calinski_harabasz as double) as calinski_harabasz,
        cast(davies_bouldin as double) as davies_bouldin,
        cast(is_selected as boolean) as is_selected,
        cast(selection_reason as varchar) as selection_reason
    from fit

)

select * from final
