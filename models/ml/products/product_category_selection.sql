with

candidates as (

    select * from {{ fit_result('ml_product_categories_fit', 'candidates') }}

),

final as (

    select * from candidates

)

select * from final
