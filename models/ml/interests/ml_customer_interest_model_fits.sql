with

fits as (

    -- one row per fitted model: the product categories, then the two interest models
    select *
    from {{ fit_result(['ml_product_categories_fit', 'ml_customer_interest_fit'], 'model_fits') }}

),

final as (

    select * from fits

)

select * from final
