{#- For on-run-end hooks: "<node>: <status>" of each result that did not succeed (error, test
    failure, skipped after a failure, runtime error, partial success); a warning is a success. -#}
{% macro unsuccessful_results(results) -%}
    {%- set failed = [] -%}
    {%- for result in results -%}
        {%- if result.status in ['error', 'fail', 'skipped', 'runtime error', 'partial success'] -%}
            {%- do failed.append(result.node.name ~ ": " ~ result.status) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(failed) }}
{%- endmacro %}

{#- For on-run-end hooks: whether the invocation ran on part of the project (--select, --exclude,
    --selector, --resource-type, --exclude-resource-type), so that its success says nothing about
    the rest. -#}
{% macro is_partial_run() -%}
    {%- for key in ['select', 'exclude', 'selector', 'resource_type', 'resource_types',
        'exclude_resource_type', 'exclude_resource_types'] -%}
        {%- if invocation_args_dict.get(key) -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {#- however the selection came about (a default selector in selectors.yml, dbt's variables):
        a model left out -#}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.unique_id not in selected_resources -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}

{#- For on-run-end hooks: whether this was a `build` of the whole project in which every node
    succeeded, so that the warehouse now holds what this run's inputs and vars give. -#}
{% macro whole_build_succeeded(results) -%}
    {{ return(execute and flags.WHICH == 'build' and not is_partial_run()
        and not unsuccessful_results(results)) }}
{%- endmacro %}

{#- DuckDB: whether this run builds a database file (the warehouse), not one in memory (the lint
    target): only then may an on-run-end hook record what the warehouse now holds. -#}
{% macro database_is_a_file() -%}
    {{ return(run_query(
        "select coalesce(max(path), '') <> '' from duckdb_databases()"
        ~ " where database_name = current_database()").columns[0].values()[0]) }}
{%- endmacro %}
