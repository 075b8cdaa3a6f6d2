with

candidates as (

    select * from {{ fit_result('product_categories_fit', 'candidates') }}

)

select * from candidates
