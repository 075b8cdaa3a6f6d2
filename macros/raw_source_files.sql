{#- The files a raw source (meta.raw_path: a path or a glob) matches right now, sorted by name. -#}
{% macro raw_source_files(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set node = graph.sources.values()
        | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name) | first -%}
    {%- set found = run_query("select file from glob('" ~ node.meta.raw_path ~ "') order by file") -%}
    {{ return(found.columns[0].values() | list) }}
{%- endmacro %}
