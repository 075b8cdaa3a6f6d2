{#-
  In-house stand-in for dbt-expectations' test of the same name: the column's sum (per group_by
  group when given) lies in [min_value, max_value]. Returns the offending groups.
-#}
{% test expect_column_sum_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none, row_condition=none, strictly=false) %}
{%- set lower_op = ">" if strictly else ">=" -%}
{%- set upper_op = "<" if strictly else "<=" -%}
with scoped as (
    select *
    from {{ model }}
    {% if row_condition %}where {{ row_condition }}{% endif %}
),

summed as (
    select
        {% if group_by %}{{ group_by | join(", ") }},{% endif %}
        sum({{ column_name }}) as column_sum
    from scoped
    {% if group_by %}group by {{ group_by | join(", ") }}{% endif %}
),

final as (
    select *
    from summed
    where column_sum is null
       or not (
        true
        {% if min_value is not none %}and column_sum {{ lower_op }} {{ min_value }}{% endif %}
        {% if max_value is not none %}and column_sum {{ upper_op }} {{ max_value }}{% endif %}
       )
)

select * from final
{% endtest %}
