with

product_fit as (

    select * from {{ ref('product_categories_fit') }}
    where result_table = 'model_fits'

),

interest_fit as (

    select * from {{ ref('customer_interest_fit') }}
    where result_table = 'model_fits'

),

fits as (

    select
        model_name, algorithm, n_clusters, silhouette, n_training_rows, training_unit,
        fit_window_start, fit_window_end, cutoff_at
    from product_fit
    union all
    select
        model_name, algorithm, n_clusters, silhouette, n_training_rows, training_unit,
        fit_window_start, fit_window_end, cutoff_at
    from interest_fit

),

final as (

    select
        -- ids
        cast(model_name as varchar) as model_name,

        -- descriptive
        cast(algorithm as varchar) as algorithm,
        cast(training_unit as varchar) as training_unit,

        -- numerics
        cast(n_clusters as integer) as n_clusters,
        cast(silhouette as double) as silhouette,
        cast(n_training_rows as integer) as n_training_rows,

        -- timestamps
        cast(fit_window_start as timestamp) as fit_window_start,
        cast(fit_window_end as timestamp) as fit_window_end,
        cast(cutoff_at as timestamp) as cutoff_at

    from fits

)

select * from final
