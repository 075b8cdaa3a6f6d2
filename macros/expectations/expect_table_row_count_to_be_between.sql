{#-
  In-house stand-in for dbt-expectations' test of the same name: the model's row count lies in
  [min_value, max_value] (open interval when strictly=true).
-#}
{% test expect_table_row_count_to_be_between(model, min_value=none, max_value=none, row_condition=none, strictly=false) %}
{%- set lower_op = ">" if strictly else ">=" -%}
{%- set upper_op = "<" if strictly else "<=" -%}
with counted as (
    select count(*) as n_rows
    from {{ model }}
    {% if row_condition %}where {{ row_condition }}{% endif %}
),

final as (
    select *
    from counted
    where not (
        true
        {% if min_value is not none %}and n_rows {{ lower_op }} {{ min_value }}{% endif %}
        {% if max_value is not none %}and n_rows {{ upper_op }} {{ max_value }}{% endif %}
    )
)

select * from final
{% endtest %}
