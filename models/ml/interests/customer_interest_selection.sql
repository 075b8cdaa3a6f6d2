with

fit as (

    select * from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_selection'

),

final as (

    select
        cast(n_clusters as integer) as n_clusters,
        cast(silhouette as double) as silhouette,
        cast(calinski_harabasz as double) as calinski_harabasz,
        cast(davies_bouldin as double) as davies_bouldin,
        cast(is_selected as boolean) as is_selected,
        cast(selection_reason as varchar) as selection_reason
    from fit

)

select * from final
