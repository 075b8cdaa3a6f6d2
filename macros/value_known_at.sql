{#-
  A sales line's value as known at a moment (a row of int_sales_lines__returns_dated): net of the
  return that cancels part of it when that return was made before the moment, else gross. The
  one rule of the RFM history and the customer value fits.
  moment: a SQL timestamp expression; line: the relation's alias, when the query needs one.
-#}
{% macro value_known_at(moment, line=none) -%}
    {%- set column = (line ~ '.') if line else '' -%}
    case
        when {{ column }}canceled_at < {{ moment }} then {{ column }}net_value
        else {{ column }}gross_value
    end
{%- endmacro %}
