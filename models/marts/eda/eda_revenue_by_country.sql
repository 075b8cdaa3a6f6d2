with

orders as (

    select * from {{ ref('fct_orders') }}

),

per_country as (

    select
        country,
        count(*) as n_orders,
        count(distinct customer_id) as n_customers,
        {{ money_sum('order_value') }} as revenue
    from orders
    group by country

),

final as (

    select
        country,
        cast(n_orders as integer) as n_orders,
        cast(n_customers as integer) as n_customers,
        revenue,
        revenue / {{ money_sum('revenue', '()') }} as revenue_share,
        revenue / n_orders as avg_order_value,
        cast(rank() over (order by revenue desc) as integer) as revenue_rank
    from per_country

)

select * from final
