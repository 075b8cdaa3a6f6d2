with

lines as (

    select * from {{ ref('fct_sales_lines') }}

),

categories as (

    select stock_code, product_category, product_category_label
    from {{ ref('product_category_assignments') }}

),

description_counts as (

    select stock_code, description, count(*) as n_lines
    from lines
    where description is not null
    group by stock_code, description

),

main_description as (

    -- the description used on most lines; ties go to the first alphabetically
    select stock_code, description
    from (
        select
            stock_code,
            description,
            row_number() over (
                partition by stock_code order by n_lines desc, description asc
            ) as description_rank
        from description_counts
    ) as ranked
    where description_rank = 1

),

product_stats as (

    select
        stock_code,
        count(distinct description) as n_descriptions,
        count(*) as n_lines,
        count(distinct invoice_no) as n_orders,
        count(distinct customer_id) as n_customers,
        sum(quantity - quantity_canceled) as net_quantity,
        {{ money_sum('total_price') }} as revenue,
        {{ money_sum('unit_price') }} / count(*) as mean_unit_price,
        {{ percentile_cont('unit_price', 0.5) }} as median_unit_price,
        min(invoice_at) as first_sold_at,
        max(invoice_at) as last_sold_at
    from lines
    group by stock_code

),

final as (

    select
        -- ids
        product_stats.stock_code,

        -- descriptive
        main_description.description,
        cast(product_stats.n_descriptions as integer) as n_descriptions,
        categories.product_category,
        categories.product_category_label,

        -- numerics
        cast(product_stats.n_lines as integer) as n_lines,
        cast(product_stats.n_orders as integer) as n_orders,
        cast(product_stats.n_customers as integer) as n_customers,
        cast(product_stats.net_quantity as bigint) as net_quantity,
        product_stats.revenue,
        product_stats.mean_unit_price,
        product_stats.median_unit_price,

        -- timestamps
        product_stats.first_sold_at,
        product_stats.last_sold_at

    from product_stats
    left join main_description on product_stats.stock_code = main_description.stock_code
    left join categories on product_stats.stock_code = categories.stock_code

)

select * from final
