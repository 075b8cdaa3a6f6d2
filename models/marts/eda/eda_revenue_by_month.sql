with

orders as (

    select * from {{ ref('fct_orders') }}

),

monthly as (

    select
        cast({{ dbt.date_trunc('month', 'invoice_at') }} as date) as month_start,
        count(*) as n_orders,
        count(distinct customer_id) as n_customers,
        {{ money_sum('order_value') }} as revenue
    from orders
    group by 1

),

final as (

    select
        month_start,
        cast(n_orders as integer) as n_orders,
        cast(n_customers as integer) as n_customers,
        revenue,
        revenue / n_orders as avg_order_value
    from monthly

)

select * from final
