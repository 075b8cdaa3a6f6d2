{#-
  Sum of a money expression (pounds, at most 3 decimals: unit prices go down to 0.001), exact
  whatever the row order: each value is rounded to 0.001 as a decimal, summed as a decimal and
  returned as a double (exact_sum with that decimal). A plain double sum depends on the order rows
  reach it, so a rebuild or an incremental load could differ from a full build in the last bits.
  window: an optional window specification, e.g. '()' for a total over all rows.
-#}
{% macro money_sum(expr, window=none) -%}
    {{ exact_sum(expr, window, 'decimal(18, 3)') }}
{%- endmacro %}
