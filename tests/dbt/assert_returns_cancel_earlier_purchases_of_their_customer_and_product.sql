-- Cleaning step 3's invariant: a return cancels a purchase line of the same customer and stock
-- code with a strictly earlier invoice time. File order is not part of it: a daily file that
-- arrives later may hold a purchase dated before a loaded return, and a full build matches it.
with

matches as (

    select * from {{ ref('int_sales_lines__cancellations_matched') }}

),

screened as (

    select * from {{ ref('int_sales_lines__screened') }}

),

final as (

    select
        matches.source_row_number,
        matches.canceled_by_row_number
    from matches
    inner join screened as purchase
        on matches.source_row_number = purchase.source_row_number
    left join screened as canceling_return
        on matches.canceled_by_row_number = canceling_return.source_row_number
    where canceling_return.source_row_number is null
        or canceling_return.quantity >= 0
        or purchase.quantity <= 0
        or canceling_return.customer_id != purchase.customer_id
        or canceling_return.stock_code != purchase.stock_code
        or canceling_return.invoice_at <= purchase.invoice_at

)

select * from final
