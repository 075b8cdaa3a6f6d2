{#-
  In-house stand-in for dbt-expectations' test of the same name and arguments: fails on every row
  whose value is in value_set (quoted as text unless quote_values=false). Nulls are not checked.
-#}
{% test expect_column_values_to_not_be_in_set(model, column_name, value_set, quote_values=true, row_condition=none) %}
with scoped as (
    select {{ column_name }} as checked_value
    from {{ model }}
    {% if row_condition %}where {{ row_condition }}{% endif %}
),

final as (
    select *
    from scoped
    where checked_value in (
        {%- for value in value_set -%}
            {%- if quote_values -%}'{{ value }}'{%- else -%}{{ value }}{%- endif -%}
            {%- if not loop.last %}, {% endif -%}
        {%- endfor -%}
    )
)

select * from final
{% endtest %}
