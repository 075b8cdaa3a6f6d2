{#-
  In-house stand-in for dbt-expectations' test of the same name and arguments, so switching to the
  real package is a one-line change in packages.yml. Fails on every row whose value lies outside
  [min_value, max_value] (or the open interval when strictly=true). Nulls are not checked: pair it
  with not_null where nulls are wrong.
-#}
{% test expect_column_values_to_be_between(model, column_name, min_value=none, max_value=none, row_condition=none, strictly=false) %}
{%- if min_value is none and max_value is none -%}
    {{ exceptions.raise_compiler_error("expect_column_values_to_be_between on " ~ model ~ "." ~ column_name ~ ": set min_value, max_value or both") }}
{%- endif -%}
{%- set lower_op = ">" if strictly else ">=" -%}
{%- set upper_op = "<" if strictly else "<=" -%}
with scoped as (
    select {{ column_name }} as checked_value
    from {{ model }}
    {% if row_condition %}where {{ row_condition }}{% endif %}
),

final as (
    select *
    from scoped
    where checked_value is not null
      and not (
        true
        {% if min_value is not none %}and checked_value {{ lower_op }} {{ min_value }}{% endif %}
        {% if max_value is not none %}and checked_value {{ upper_op }} {{ max_value }}{% endif %}
      )
)

select * from final
{% endtest %}
