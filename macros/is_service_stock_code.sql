{#-
  Service lines (postage, manual, carriage, bank charges, discounts, samples, ...) carry stock codes
  that start with a Latin letter; goods carry codes that start with a digit.
-#}
{% macro is_service_stock_code(stock_code) -%}
    (upper(substr({{ stock_code }}, 1, 1)) between 'A' and 'Z')
{%- endmacro %}
