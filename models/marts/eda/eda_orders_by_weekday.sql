with

orders as (

    select * from {{ ref('fct_orders') }}

),

with_day as (

    select
        {{ iso_day_of_week('invoice_at') }} as iso_weekday,
        cast(invoice_at as date) as order_date,
        order_value
    from orders

),

per_weekday as (

    select
        iso_weekday,
        count(*) as n_orders,
        count(distinct order_date) as n_trading_days,
        {{ money_sum('order_value') }} as revenue
    from with_day
    group by iso_weekday

),

final as (

    select
        cast(iso_weekday as integer) as iso_weekday,
        cast(case iso_weekday
            when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
            when 4 then 'Thursday' when 5 then 'Friday' when 6 then 'Saturday'
            else 'Sunday'
        end as string) as weekday_name,
        cast(n_orders as integer) as n_orders,
        cast(n_trading_days as integer) as n_trading_days,
        cast(n_orders as double) / n_trading_days as mean_daily_orders,
        revenue,
        revenue / {{ money_sum('revenue', '()') }} as revenue_share
    from per_weekday

)

select * from final
