{#-
  The data window the segment classifier is trained on, one row: from the first cleaned sales
  line to the RFM as-of moment (only purchases strictly before it count). The classifier fit
  records it in ml.model_registry (data_window_start, data_window_end, created_at).
-#}
with

sales_lines as (

    select invoice_at from {{ ref('fct_sales_lines') }}

),

rfm as (

    select rfm_as_of from {{ ref('customer_rfm') }}

),

first_line as (

    select min(invoice_at) as data_window_start
    from sales_lines

),

as_of as (

    select max(rfm_as_of) as data_window_end
    from rfm

),

final as (

    select
        first_line.data_window_start,
        as_of.data_window_end
    from first_line
    cross join as_of

)

select * from final
