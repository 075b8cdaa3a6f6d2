with

products as (

    select * from {{ ref('dim_products') }}

),

ranked as (

    select
        *,
        revenue / {{ money_sum('revenue', '()') }} as revenue_share,
        rank() over (order by revenue desc, stock_code asc) as revenue_rank
    from products

),

final as (

    select
        cast(revenue_rank as integer) as revenue_rank,
        stock_code,
        description,
        revenue,
        revenue_share,
        net_quantity,
        n_orders,
        n_customers
    from ranked
    where revenue_rank <= {{ integer_var('top_products_n') }}

)

select * from final
