with

customers as (

    select * from {{ fit_result('ml_customer_interest_fit', 'customers') }}

),

final as (

    select * from customers
    where training_interest_category is not null

)

select * from final
