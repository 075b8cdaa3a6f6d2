-- The product categories were fitted on exactly the products sold before the cutoff: a product is
-- 'fit' if and only if its first cleaned line is before var('new_customer_cutoff'). A product
-- first sold later marked 'fit' would mean lines after the cutoff reached the fit.
with

products as (

    select stock_code, first_sold_at from {{ ref('dim_products') }}

),

assignments as (

    select stock_code, assignment_method from {{ ref('product_category_assignments') }}

),

final as (

    select products.stock_code, products.first_sold_at, assignments.assignment_method
    from products
    inner join assignments on products.stock_code = assignments.stock_code
    where (assignments.assignment_method = 'fit')
        <> (products.first_sold_at < {{ timestamp_var('new_customer_cutoff') }})

)

select * from final
