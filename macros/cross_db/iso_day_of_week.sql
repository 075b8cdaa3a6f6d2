{#- ISO day of week of a timestamp: 1 = Monday .. 7 = Sunday. -#}
{% macro iso_day_of_week(timestamp_expr) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'retail_segments')(timestamp_expr)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(timestamp_expr) -%}
    cast(extract(isodow from {{ timestamp_expr }}) as integer)
{%- endmacro %}

{% macro spark__iso_day_of_week(timestamp_expr) -%}
    cast(weekday({{ timestamp_expr }}) + 1 as integer)
{%- endmacro %}
