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
