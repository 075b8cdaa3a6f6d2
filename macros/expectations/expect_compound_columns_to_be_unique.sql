{#-
  In-house stand-in for dbt-expectations' test of the same name: the combination of column_list is
  unique. Returns one row per duplicated combination.
-#}
{% test expect_compound_columns_to_be_unique(model, column_list, row_condition=none) %}
with scoped as (
    select {{ column_list | join(", ") }}
    from {{ model }}
    {% if row_condition %}where {{ row_condition }}{% endif %}
),

final as (
    select {{ column_list | join(", ") }}, count(*) as n_rows
    from scoped
    group by {{ column_list | join(", ") }}
    having count(*) > 1
)

select * from final
{% endtest %}
