{#- One row per element of a list (array) column, as a struct. -#}
{% macro unnest_list(column) -%}
    {{ return(adapter.dispatch('unnest_list', 'retail_segments')(column)) }}
{%- endmacro %}

{% macro default__unnest_list(column) -%}
    unnest({{ column }})
{%- endmacro %}

{% macro spark__unnest_list(column) -%}
    explode({{ column }})
{%- endmacro %}
