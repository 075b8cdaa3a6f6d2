{#-
  A SQL string literal holding value exactly (paths, vars, any user text): the only way user text
  reaches SQL in this project. DuckDB doubles a quote inside '...'; Spark SQL escapes it (and the
  backslash) with a backslash.
-#}
{% macro string_literal(value) -%}
    {{ return(adapter.dispatch('string_literal', 'retail_segments')(value)) }}
{%- endmacro %}

{% macro default__string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro spark__string_literal(value) -%}
    '{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{#- A timestamp literal from a var (validated before the build: YYYY-MM-DD[ HH:MM[:SS]]). -#}
{% macro timestamp_var(name) -%}
    cast({{ string_literal(var(name)) }} as timestamp)
{%- endmacro %}

{#- When this dbt invocation started (UTC, to the second), as a timestamp literal. -#}
{% macro run_started_at_timestamp() -%}
    cast({{ string_literal(run_started_at.strftime('%Y-%m-%d %H:%M:%S')) }} as timestamp)
{%- endmacro %}

{#- An integer var, refused at compile time when it is not one (validated before the build). -#}
{% macro integer_var(name) -%}
    {%- set value = var(name) -%}
    {%- if value is not number or value is sameas true or value is sameas false
           or (value | int) != value -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " = " ~ value ~ " is not an integer") }}
    {%- endif -%}
    {{ value | int }}
{%- endmacro %}
