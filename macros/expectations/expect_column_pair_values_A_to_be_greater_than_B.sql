{#-
  In-house stand-in for dbt-expectations' test of the same name: column_A > column_B on every row
  (>= when or_equal=true). Rows where either side is null are not checked.
-#}
{% test expect_column_pair_values_A_to_be_greater_than_B(model, column_A, column_B, or_equal=false, row_condition=none) %}
{%- set op = ">=" if or_equal else ">" -%}
with scoped as (
    select {{ column_A }} as value_a, {{ column_B }} as value_b
    from {{ model }}
    {% if row_condition %}where {{ row_condition }}{% endif %}
),

final as (
    select *
    from scoped
    where value_a is not null
      and value_b is not null
      and not (value_a {{ op }} value_b)
)

select * from final
{% endtest %}
