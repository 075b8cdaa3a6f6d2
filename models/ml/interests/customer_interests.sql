with

scores as (

    select customer_id, interest_category, is_fit_sample
    from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_scores' and feature_window = 'whole_history'

),

clusters as (

    select interest_category, interest_name
    from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_clusters'

),

baskets as (

    select * from {{ ref('customer_interest_baskets') }}
    where feature_window = 'whole_history'

),

final as (

    select
        -- ids
        cast(scores.customer_id as integer) as customer_id,
        cast(scores.interest_category as integer) as interest_category,

        -- descriptive
        cast(clusters.interest_name as varchar) as interest_name,
        cast(case when baskets.is_new_customer then 'scored' else 'clustered' end as varchar)
            as assignment_method,
        baskets.is_new_customer,
        cast(scores.is_fit_sample as boolean) as is_fit_sample,

        -- numerics
        baskets.n_orders,
        baskets.total_spend,

        -- timestamps
        baskets.first_order_at as first_purchase_at

    from scores
    inner join baskets on baskets.customer_id = scores.customer_id
    left join clusters on clusters.interest_category = scores.interest_category

)

select * from final
