{#-
  Sum and mean of a double expression that are the same whatever order the rows reach them in.
  DuckDB (and Spark) add doubles on several threads in no fixed order, so a plain sum or avg
  differed in the last bits from build to build. Each value is rounded to 18 decimals as a
  decimal (or to `decimal`), summed exactly and returned as a double (money: money_sum). Values
  must lie below 1e20 in magnitude.
  window: an optional window specification, e.g. '()' for a total over all rows.
-#}
{% macro exact_sum(expr, window=none, decimal='decimal(38, 18)') -%}
    cast(sum(cast({{ expr }} as {{ decimal }})){% if window %} over {{ window }}{% endif %} as double)
{%- endmacro %}

{#- The mean of the non-null values of a double expression, as exact_sum. -#}
{% macro exact_avg(expr) -%}
    {{ exact_sum(expr) }} / count({{ expr }})
{%- endmacro %}
