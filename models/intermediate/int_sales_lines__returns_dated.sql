{#-
  Every sales line with what it was worth gross and net, and when the return that cancels part of
  it was made. A line's net value (fct_sales_lines.total_price) nets out returns made at any time,
  also after a cut-off; a figure "as known at" a moment must net out only the returns made before
  it: value_known_at(moment) = total_price if canceled_at < moment, else gross_value.
-#}
with

sales_lines as (

    select * from {{ ref('fct_sales_lines') }}

),

cancellations as (

    select * from {{ ref('int_sales_lines__cancellations_matched') }}

),

screened as (

    select * from {{ ref('int_sales_lines__screened') }}

),

return_lines as (

    select source_row_number as return_row_number, invoice_at as returned_at
    from screened
    where is_return

),

dated as (

    select
        sales_lines.source_row_number,
        sales_lines.customer_id,
        sales_lines.invoice_no,
        sales_lines.invoice_at,
        sales_lines.unit_price * sales_lines.quantity as gross_value,
        sales_lines.total_price as net_value,
        return_lines.returned_at as canceled_at
    from sales_lines
    left join cancellations
        on sales_lines.source_row_number = cancellations.source_row_number
    left join return_lines
        on cancellations.canceled_by_row_number = return_lines.return_row_number

),

final as (

    select
        -- ids
        source_row_number,
        customer_id,
        invoice_no,

        -- numerics
        gross_value,
        net_value,

        -- timestamps
        invoice_at,
        canceled_at

    from dated

)

select * from final
