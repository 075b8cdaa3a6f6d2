with

pca_fit as (

    select * from {{ ref('ml_segmentation_pca_fit') }}
    where result_table = 'embedding_summary'

),

tsne_fit as (

    select * from {{ ref('ml_segmentation_tsne_fit') }}
    where result_table = 'embedding_summary'

),

fit as (

    select * from pca_fit
    union all by name
    select * from tsne_fit

),

final as (

    select
        cast(stage as varchar) as stage,
        cast(component as integer) as component,
        cast(explained_variance_ratio as double) as explained_variance_ratio,
        cast(kl_divergence as double) as kl_divergence,
        cast(loading_recency as double) as loading_recency,
        cast(loading_frequency as double) as loading_frequency,
        cast(loading_monetary as double) as loading_monetary
    from fit

)

select * from final
