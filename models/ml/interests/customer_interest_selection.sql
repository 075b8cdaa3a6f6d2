with

candidates as (

    select * from {{ fit_result('ml_customer_interest_fit', 'candidates') }}

)

select * from candidates
