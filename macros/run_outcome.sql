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
    {{ return(false) }}
{%- endmacro %}
