{#-
  NOT NULL of a model's contract, where the engine does not enforce it (a project post-hook,
  dbt_project.yml). DuckDB creates contracted tables with their NOT NULL constraints, so an
  insert of a null fails there. dbt-spark sets them only on Delta tables (its
  spark__persist_constraints), and this project writes plain Parquet: on Spark a null would pass
  into a column the contract declares not null, checked by no data test except on primary keys.
  After each contracted model is built (table, full refresh or incremental batch), one query
  counts the nulls of every such column and the model fails naming them, so nothing downstream
  runs and nothing is published.
-#}
{% macro check_contract_not_null() -%}
    {{ return(adapter.dispatch('check_contract_not_null')()) }}
{%- endmacro %}

{% macro default__check_contract_not_null() -%}
    {{ return('') }}
{%- endmacro %}

{% macro spark__check_contract_not_null() -%}
    {%- if execute and ((model.config or {}).get('contract') or {}).get('enforced') -%}
        {%- do contract_null_check(this, contract_not_null_columns(model)) -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- The columns a model's constraints declare not null, in the model's column order: those with a
    not_null (or primary_key) column constraint and those of a model-level primary_key or
    not_null constraint. -#}
{% macro contract_not_null_columns(node) -%}
    {%- set keyed = [] -%}
    {%- for constraint in node.constraints or [] if constraint.type in ('not_null', 'primary_key') -%}
        {%- do keyed.extend(constraint.columns or []) -%}
    {%- endfor -%}
    {%- set names = [] -%}
    {%- for name, column in node.columns.items() -%}
        {%- set types = (column.constraints or []) | map(attribute='type') | list -%}
        {%- if name in keyed or 'not_null' in types or 'primary_key' in types -%}
            {%- do names.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{#- Fail (a compiler error naming the relation, each column holding nulls and how many) when a
    column of columns holds a null in relation; portable SQL, one query. -#}
{% macro contract_null_check(relation, columns) -%}
    {%- if not columns -%}
        {{ return('') }}
    {%- endif -%}
    {%- set counts -%}
        select
        {%- for name in columns %}
            sum(case when {{ adapter.quote(name) }} is null then 1 else 0 end){{ ',' if not loop.last }}
        {%- endfor %}
        from {{ relation }}
    {%- endset -%}
    {%- set row = run_query(counts).rows[0] -%}
    {%- set found = [] -%}
    {%- for name in columns -%}
        {%- set n = (row[loop.index0] or 0) | int -%}
        {%- if n > 0 -%}
            {%- do found.append(name ~ ' (' ~ n ~ (' row)' if n == 1 else ' rows)')) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if found -%}
        {{ exceptions.raise_compiler_error(
            relation ~ " holds nulls in columns its contract declares not null: "
            ~ found | join(', ') ~ ". The engine does not enforce NOT NULL on these tables, so the"
            ~ " build checks it after each model; nothing downstream was built and nothing was"
            ~ " published.\n  Fix: this is a defect of the model (or of the input it reads):"
            ~ " report it with the model's name and these columns.") }}
    {%- endif -%}
    {{ log("contract NOT NULL checked on " ~ relation ~ ": " ~ columns | length ~ " columns") }}
{%- endmacro %}
