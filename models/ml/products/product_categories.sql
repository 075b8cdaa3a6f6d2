with

categories as (

    select *
    from {{ fit_result('ml_product_categories_fit', 'categories', columns=[
        'product_category', 'product_category_label', 'top_terms'
    ]) }}

),

assignments as (

    select * from {{ ref('product_category_assignments') }}

),

lines as (

    select stock_code, total_price from {{ ref('fct_sales_lines') }}

),

product_counts as (

    select
        product_category,
        count(*) as n_products,
        sum(case when assignment_method = 'fit' then 1 else 0 end) as n_products_fit,
        sum(case when assignment_method = 'nearest_category' then 1 else 0 end)
            as n_products_assigned_later,
        {{ percentile_cont('median_unit_price', 0.5) }} as median_unit_price
    from assignments
    group by product_category

),

category_revenue as (

    select assignments.product_category, {{ money_sum('lines.total_price') }} as revenue
    from lines
    inner join assignments on lines.stock_code = assignments.stock_code
    group by assignments.product_category

),

final as (

    select
        -- ids
        categories.product_category,

        -- descriptive
        categories.product_category_label,
        categories.top_terms,

        -- numerics
        cast(product_counts.n_products as integer) as n_products,
        cast(product_counts.n_products_fit as integer) as n_products_fit,
        cast(product_counts.n_products_assigned_later as integer) as n_products_assigned_later,
        product_counts.median_unit_price,
        coalesce(category_revenue.revenue, 0) as revenue,
        coalesce(category_revenue.revenue, 0)
        / {{ money_sum('coalesce(category_revenue.revenue, 0)', '()') }} as revenue_share

    from categories
    left join product_counts on categories.product_category = product_counts.product_category
    left join category_revenue on categories.product_category = category_revenue.product_category

)

select * from final
