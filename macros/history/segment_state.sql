{#-
  A customer's state at an as-of date in the segment migration: 'churned' when they have not
  bought for var('history_churn_days') days or more, otherwise their part II segment.
-#}
{% macro segment_state(recency_days, segment_name) -%}
    case
        when {{ recency_days }} >= {{ integer_var('history_churn_days') }} then 'churned'
        else {{ segment_name }}
    end
{%- endmacro %}
