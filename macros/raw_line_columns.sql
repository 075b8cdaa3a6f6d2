{#- The typed raw-line columns every staging model of online_retail provides, in one order. -#}
{% macro raw_line_columns() -%}
    source_row_number, invoice_no, stock_code, customer_id, description, country,
    quantity, unit_price, invoice_at, is_cancellation, source_file, source_sha256
{%- endmacro %}
