with

window_orders as (

    select * from {{ ref('int_customer_interest__window_orders') }}

),

final as (

    select
        -- ids
        customer_id,
        feature_window,
        orders_seen,

        -- descriptive
        is_new_customer,

        -- numerics
        cast(count(*) as integer) as n_orders,
        min(basket_value) as min_basket_value,
        {{ money_sum("basket_value") }} / count(*) as mean_basket_value,
        max(basket_value) as max_basket_value,
        {{ money_sum("basket_value") }} as total_spend,

        -- timestamps
        min(invoice_at) as first_order_at,
        max(invoice_at) as last_order_at

    from window_orders
    group by customer_id, feature_window, orders_seen, is_new_customer

)

select * from final
