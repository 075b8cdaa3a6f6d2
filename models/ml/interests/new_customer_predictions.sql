with

predictions as (

    select *
    from {{ fit_result('ml_customer_interest_fit', 'predictions', columns=[
        'customer_id', 'orders_seen', 'predicted_interest_category', 'prediction_probability',
        'nearest_interest_category'
    ]) }}

),

truth as (

    select customer_id, interest_category, interest_name, n_orders
    from {{ ref('customer_interests') }}

),

profiles as (

    select interest_category, interest_name, n_customers_fit
    from {{ ref('customer_interest_profiles') }}

),

majority as (

    -- the baseline: the interest category with the most customers in the fit
    select interest_category
    from profiles
    order by n_customers_fit desc, interest_category asc
    limit 1

),

windows as (

    select customer_id, orders_seen, first_order_at, last_order_at
    from {{ ref('int_customer_interest__baskets') }}
    where feature_window = 'first_orders'

),

final as (

    select
        -- ids
        predictions.customer_id,
        predictions.orders_seen,

        -- predictions
        predictions.predicted_interest_category,
        predicted.interest_name as predicted_interest_name,
        predictions.prediction_probability,
        predictions.nearest_interest_category,
        majority.interest_category as baseline_interest_category,

        -- truth
        truth.interest_category as true_interest_category,
        truth.interest_name as true_interest_name,
        predictions.predicted_interest_category = truth.interest_category as is_correct,
        predictions.nearest_interest_category = truth.interest_category as is_nearest_correct,
        majority.interest_category = truth.interest_category as is_baseline_correct,

        -- numerics
        truth.n_orders as n_orders_total,

        -- timestamps
        windows.first_order_at as first_purchase_at,
        windows.last_order_at as last_seen_order_at

    from predictions
    inner join truth on predictions.customer_id = truth.customer_id
    inner join windows
        on predictions.customer_id = windows.customer_id
        and predictions.orders_seen = windows.orders_seen
    cross join majority
    left join profiles as predicted
        on predictions.predicted_interest_category = predicted.interest_category

)

select * from final
