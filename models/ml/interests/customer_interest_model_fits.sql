with

fits as (

    -- one row per fitted model: the product categories, then the two interest models
    select *
    from {{ fit_result(['product_categories_fit', 'customer_interest_fit'], 'model_fits') }}

)

select * from fits
