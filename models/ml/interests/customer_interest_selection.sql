with

candidates as (

    select * from {{ fit_result('customer_interest_fit', 'candidates') }}

)

select * from candidates
