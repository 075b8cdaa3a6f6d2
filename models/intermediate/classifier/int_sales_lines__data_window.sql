{#-
  Where the data the segment classifier is trained on starts, one row: the first cleaned sales
  line (the window ends at the RFM as-of moment, which the fit reads from marts.customer_rfm).
  The classifier fit records it in ml.model_registry (data_window_start).
-#}
with

sales_lines as (

    select invoice_at from {{ ref('fct_sales_lines') }}

),

final as (

    select min(invoice_at) as data_window_start
    from sales_lines

)

select * from final
