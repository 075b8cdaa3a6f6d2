with

candidates as (

    select * from {{ fit_result('ml_customer_interest_fit', 'candidates') }}

),

final as (

    select * from candidates

)

select * from final
