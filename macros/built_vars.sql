{#-
  The vars the warehouse's tables were built with, for `python -m retail_segments build --select`
  and the backfill (retail_segments.ops.preflight.BuiltVars): a build limited to some models, with
  other vars than the whole build before it, would build those models with the new values beside
  tables built with the old (customer_rfm on a history of another rfm_as_of is empty), and publish
  the mix. The record is a table of the warehouse itself, so it goes where the warehouse goes:
  landing.built_vars, one row: vars_json (the stamp's vars as DuckDB's JSON) and valid.

  - on-run-end, record_built_vars(): written after a whole `dbt build` in which no node ended in
    error, failure or skip (whole_build_succeeded()), with the vars of the prepared stamp (which
    check_prepared_inputs() found equal to the run's);
  - on-run-start, invalidate_built_vars(): a build or run whose vars differ from the record's
    marks it not valid before any relation is replaced; the next whole build that succeeds
    writes it again.

  On Spark the launcher keeps the record (a file in its folder) in Python around its dbt run
  (retail_segments.spark.build); the spark__ hooks do nothing.
-#}
{% macro _stamp_vars_json_sql() -%}
    select cast(to_json(vars) as varchar) from read_json(
        {{ string_literal(landing_dir() ~ '/current/prepared.json') }},
        columns = {'vars': 'struct(name varchar, value varchar)[]'}
    )
{%- endmacro %}

{% macro record_built_vars(results) %}
    {%- if not whole_build_succeeded(results) -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('record_built_vars', 'retail_segments')()) }}
{% endmacro %}

{% macro default__record_built_vars() -%}
    {%- if not database_is_a_file() -%}
        {{ return('') }}
    {%- endif -%}
    create schema if not exists landing;
    create or replace table landing.built_vars as
        select ({{ _stamp_vars_json_sql() }}) as vars_json, true as valid
{%- endmacro %}

{% macro spark__record_built_vars() -%}
    {{ return('') }}
{%- endmacro %}

{% macro invalidate_built_vars() %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('invalidate_built_vars', 'retail_segments')()) }}
{% endmacro %}

{% macro default__invalidate_built_vars() -%}
    {%- set found = run_query(
        "select count(*) from information_schema.tables where table_catalog = current_database()"
        ~ " and table_schema = 'landing' and table_name = 'built_vars'").columns[0].values()[0] -%}
    {%- if found == 0 -%}
        {{ return('') }}
    {%- endif -%}
    update landing.built_vars set valid = false
    where valid and vars_json is distinct from ({{ _stamp_vars_json_sql() }})
{%- endmacro %}

{% macro spark__invalidate_built_vars() -%}
    {{ return('') }}
{%- endmacro %}
