with

products as (

    select *
    from {{ fit_result('ml_product_categories_fit', 'products', columns=[
        'stock_code', 'product_category', 'assignment_method', 'description_used',
        'median_unit_price'
    ]) }}

),

categories as (

    select *
    from {{ fit_result('ml_product_categories_fit', 'categories', columns=[
        'product_category', 'product_category_label'
    ]) }}

),

final as (

    select
        -- ids
        products.stock_code,
        products.product_category,

        -- descriptive
        categories.product_category_label,
        products.assignment_method,
        products.description_used,

        -- numerics
        products.median_unit_price

    from products
    left join categories on products.product_category = categories.product_category

)

select * from final
