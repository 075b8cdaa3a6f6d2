with

lines as (

    select * from {{ ref('fct_sales_lines') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

country_lines as (

    select customer_id, country, count(*) as n_lines
    from lines
    group by customer_id, country

),

main_country as (

    -- the country of most of the customer's lines; ties go to the first name alphabetically
    select customer_id, country
    from (
        select
            customer_id,
            country,
            row_number() over (
                partition by customer_id order by n_lines desc, country asc
            ) as country_rank
        from country_lines
    ) as ranked
    where country_rank = 1

),

order_stats as (

    select
        customer_id,
        count(*) as n_orders,
        {{ money_sum('order_value') }} as revenue,
        min(invoice_at) as first_purchase_at,
        max(invoice_at) as last_purchase_at
    from orders
    group by customer_id

),

line_stats as (

    select
        customer_id,
        count(*) as n_lines,
        count(distinct stock_code) as n_products,
        count(distinct country) as n_countries
    from lines
    group by customer_id

),

final as (

    select
        -- ids
        order_stats.customer_id,

        -- descriptive
        main_country.country,
        cast(line_stats.n_countries as integer) as n_countries,

        -- numerics
        cast(order_stats.n_orders as integer) as n_orders,
        cast(line_stats.n_lines as integer) as n_lines,
        cast(line_stats.n_products as integer) as n_products,
        order_stats.revenue,
        order_stats.revenue / order_stats.n_orders as avg_order_value,

        -- timestamps
        order_stats.first_purchase_at,
        order_stats.last_purchase_at

    from order_stats
    inner join line_stats on order_stats.customer_id = line_stats.customer_id
    inner join main_country on order_stats.customer_id = main_country.customer_id

)

select * from final
