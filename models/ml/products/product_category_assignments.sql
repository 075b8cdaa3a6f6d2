with

assignments as (

    select * from {{ ref('product_categories_fit') }}
    where result_table = 'product_category_assignments'

),

categories as (

    select product_category, product_category_label
    from {{ ref('product_categories_fit') }}
    where result_table = 'product_categories'

),

final as (

    select
        -- ids
        cast(assignments.stock_code as varchar) as stock_code,
        cast(assignments.product_category as integer) as product_category,

        -- descriptive
        cast(categories.product_category_label as varchar) as product_category_label,
        cast(assignments.assignment_method as varchar) as assignment_method,
        cast(assignments.description_used as varchar) as description_used,

        -- numerics
        cast(assignments.median_unit_price as double) as median_unit_price

    from assignments
    left join categories on categories.product_category = assignments.product_category

)

select * from final
