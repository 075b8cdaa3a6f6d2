{#-
  The 'delete+insert' incremental strategy on dbt-spark with plain Parquet tables (dbt-spark has
  it only through MERGE, on Delta/Iceberg/Hudi). dbt-duckdb's own strategy runs the same models;
  the result is the same: the table's rows whose unique key is in the new batch are replaced by
  the batch, other rows stay.

  Spark cannot overwrite a table it reads in the same statement, so the new contents (old rows
  whose key is not in the batch, then the batch) are first written to a scratch table
  (<tables>/_work/<schema>__<name>, skipped when tables are registered again), then copied over the
  target. The whole table is rewritten, which is what Parquet without a table format allows.

  Root-project overrides of two plain dbt-spark macros; the original is called for the other
  strategies through the dbt namespace.
-#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy == 'delete+insert' -%}
        {%- do return(raw_strategy) -%}
    {%- endif -%}
    {%- do return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) -%}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- if strategy == 'delete+insert' -%}
        {{ spark_delete_insert_sql(source, target, unique_key) }}
    {%- else -%}
        {{ dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) }}
    {%- endif -%}
{%- endmacro %}

{% macro spark_delete_insert_sql(source, target, unique_key) -%}
    {%- if unique_key is none -%}
        {%- do exceptions.raise_compiler_error(
            "incremental_strategy 'delete+insert' needs a unique_key (model " ~ target ~ ")") -%}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set scratch = api.Relation.create(
        schema=target.schema, identifier=target.identifier ~ '__dbt_next', type='table') -%}
    {%- set location = spark_tables_dir() ~ '/_work/' ~ target.schema ~ '__' ~ target.identifier -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
    {%- call statement('delete_insert_drop_scratch') -%}
        drop table if exists {{ scratch }}
    {%- endcall -%}
    {%- call statement('delete_insert_scratch') -%}
        create table {{ scratch }} using parquet location {{ string_literal(location) }} as
        select {{ columns }} from {{ target }} as old_rows
        where not exists (
            select 1 from {{ source }} as new_rows
            where
            {%- for key in keys %}
                new_rows.{{ key }} = old_rows.{{ key }}{{ ' and' if not loop.last }}
            {%- endfor %}
        )
        union all
        select {{ columns }} from {{ source }}
    {%- endcall -%}
    insert overwrite table {{ target }} select {{ columns }} from {{ scratch }}
{%- endmacro %}
