{#-
  Share of cancelled baskets, as the study counts it: baskets are distinct (customer, invoice)
  pairs among lines with a customer id after duplicate removal (cleaning steps 1-2); a basket is
  cancelled when its invoice number starts with C.
-#}
with

screened as (

    select * from {{ ref('int_sales_lines__screened') }}

),

baskets as (

    select distinct customer_id, invoice_no, is_cancellation
    from screened
    where removal_step is null or removal_step > 2

),

final as (

    select
        cast(count(*) as integer) as n_baskets,
        cast(sum(case when is_cancellation then 1 else 0 end) as integer) as n_cancelled_baskets,
        cast(sum(case when is_cancellation then 1 else 0 end) as double) / count(*)
            as cancelled_basket_share
    from baskets

)

select * from final
