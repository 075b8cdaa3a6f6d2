with

scores as (

    select * from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_scores'

),

predictions as (

    select
        customer_id, orders_seen, interest_category, nearest_interest_category,
        prediction_probability
    from scores
    where feature_window = 'first_orders'

),

truth as (

    select customer_id, interest_category
    from scores
    where feature_window = 'whole_history'

),

clusters as (

    select interest_category, interest_name, n_customers_fit
    from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_clusters'

),

majority as (

    -- the baseline: the interest category with the most customers in the fit
    select interest_category
    from clusters
    order by n_customers_fit desc, interest_category
    limit 1

),

windows as (

    select customer_id, orders_seen, first_order_at, last_order_at
    from {{ ref('customer_interest_baskets') }}
    where feature_window = 'first_orders'

),

history as (

    select customer_id, n_orders
    from {{ ref('customer_interest_baskets') }}
    where feature_window = 'whole_history'

),

final as (

    select
        -- ids
        cast(predictions.customer_id as integer) as customer_id,
        cast(predictions.orders_seen as integer) as orders_seen,

        -- predictions
        cast(predictions.interest_category as integer) as predicted_interest_category,
        cast(predicted.interest_name as varchar) as predicted_interest_name,
        cast(predictions.prediction_probability as double) as prediction_probability,
        cast(predictions.nearest_interest_category as integer) as nearest_interest_category,
        cast(majority.interest_category as integer) as baseline_interest_category,

        -- truth
        cast(truth.interest_category as integer) as true_interest_category,
        cast(actual.interest_name as varchar) as true_interest_name,
        predictions.interest_category = truth.interest_category as is_correct,
        predictions.nearest_interest_category = truth.interest_category as is_nearest_correct,
        majority.interest_category = truth.interest_category as is_baseline_correct,

        -- numerics
        history.n_orders as n_orders_total,

        -- timestamps
        windows.first_order_at as first_purchase_at,
        windows.last_order_at as last_seen_order_at

    from predictions
    inner join truth on truth.customer_id = predictions.customer_id
    inner join windows
        on windows.customer_id = predictions.customer_id
        and windows.orders_seen = predictions.orders_seen
    inner join history on history.customer_id = predictions.customer_id
    cross join majority
    left join clusters as predicted
        on predicted.interest_category = predictions.interest_category
    left join clusters as actual on actual.interest_category = truth.interest_category

)

select * from final
