{#-
  Mean daily orders per hour of day, as the study measures it: the orders placed in that hour over
  the whole period, divided by the number of trading days (days with at least one order).
-#}
with

orders as (

    select * from {{ ref('fct_orders') }}

),

with_hour as (

    select
        cast(extract(hour from invoice_at) as integer) as hour_of_day,
        cast(invoice_at as date) as order_date,
        order_value
    from orders

),

trading_days as (

    select count(distinct order_date) as n_trading_days from with_hour

),

per_hour as (

    select
        hour_of_day,
        count(*) as n_orders,
        {{ money_sum('order_value') }} as revenue
    from with_hour
    group by hour_of_day

),

final as (

    select
        per_hour.hour_of_day,
        cast(per_hour.n_orders as integer) as n_orders,
        cast(trading_days.n_trading_days as integer) as n_trading_days,
        cast(per_hour.n_orders as double) / trading_days.n_trading_days as mean_daily_orders,
        per_hour.revenue
    from per_hour
    cross join trading_days

)

select * from final
