with

pca_fit as (

    select * from {{ ref('ml_segmentation_pca_fit') }}
    where result_table = 'cluster_profiles'

),

tsne_fit as (

    select * from {{ ref('ml_segmentation_tsne_fit') }}
    where result_table = 'cluster_profiles'

),

fit as (

    select * from pca_fit
    union all by name
    select * from tsne_fit

),

final as (

    select
        cast(stage as varchar) as stage,
        cast(cluster_id as integer) as cluster_id,
        cast(segment_name as varchar) as segment_name,
        cast(n_customers as integer) as n_customers,
        cast(mean_recency_days as double) as mean_recency_days,
        cast(median_recency_days as double) as median_recency_days,
        cast(mean_frequency as double) as mean_frequency,
        cast(median_frequency as double) as median_frequency,
        cast(mean_monetary as double) as mean_monetary,
        cast(median_monetary as double) as median_monetary,
        cast(revenue_share as double) as revenue_share,
        cast(meaning as varchar) as meaning,
        cast(strategy as varchar) as strategy,
        cast(archetype_distance as double) as archetype_distance,
        cast(n_fit_sample as integer) as n_fit_sample,
        cast(name_source as varchar) as name_source,
        cast(previous_model_version as varchar) as previous_model_version
    from fit

)

select * from final
