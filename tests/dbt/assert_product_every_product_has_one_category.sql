-- Every stock code of the cleaned sales lines has exactly one product category, in
-- product_category_assignments and in dim_products, and the two agree.
-- Returns the stock codes that have none, several, or disagreeing categories.
with

sold as (

    select distinct stock_code from {{ ref('fct_sales_lines') }}

),

assignments as (

    select stock_code, product_category from {{ ref('product_category_assignments') }}

),

products as (

    select stock_code, product_category from {{ ref('dim_products') }}

),

counted as (

    select
        sold.stock_code,
        count(assignments.product_category) as n_categories,
        min(assignments.product_category) as assigned_category
    from sold
    left join assignments on sold.stock_code = assignments.stock_code
    group by sold.stock_code

),

final as (

    select
        counted.stock_code, counted.n_categories, counted.assigned_category,
        products.product_category as dim_category
    from counted
    left join products on counted.stock_code = products.stock_code
    where counted.n_categories <> 1
        or products.product_category is null
        or products.product_category <> counted.assigned_category

)

select * from final
