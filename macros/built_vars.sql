{#-
  The vars the warehouse's tables were built with, for `python -m retail_segments build --select`
  and the backfill (retail_segments.ops.preflight.BuiltVars): a build limited to some models, with
  other vars than the whole build before it, would build those models with the new values beside
  tables built with the old (customer_rfm on a history of another rfm_as_of is empty), and publish
  the mix; so would one after a run that stopped half-way (its first tables on new inputs, the
  rest on the old). The record is a table of the warehouse itself, so it goes where the warehouse
  goes: landing.built_vars, one row: vars_json (the stamp's vars as DuckDB's JSON), valid,
  inputs_key (the stamp's key of the input files and seeds) and unfinished.

  - on-run-end, record_built_vars(): after a whole `dbt build` in which no node ended in error,
    failure or skip (whole_build_succeeded()), written with the vars and inputs key of the prepared
    stamp (which check_prepared_inputs() found equal to the run's); after any other build or run
    in which every node succeeded, marked finished;
  - on-run-start, invalidate_built_vars(): a build or run marks the record unfinished, and as not
    valid if its vars or inputs differ from the record's, before any relation is replaced; a run
    that stops or fails leaves it unfinished, and the next whole build that succeeds writes it
    again.

  On Spark the launcher keeps the record (a file in its folder) in Python around its dbt run
  (retail_segments.spark.build); the spark__ hooks do nothing.
-#}
{% macro _stamp_sql(expression, columns) -%}
    select {{ expression }} from read_json(
        {{ string_literal(landing_dir() ~ '/current/prepared.json') }},
        columns = {{ columns }}
    )
{%- endmacro %}

{% macro _stamp_vars_json_sql() -%}
    {{ _stamp_sql('cast(to_json(vars) as varchar)',
        "{'vars': 'struct(name varchar, value varchar)[]'}") }}
{%- endmacro %}

{% macro _stamp_inputs_key_sql() -%}
    {{ _stamp_sql('inputs_key', "{'inputs_key': 'varchar'}") }}
{%- endmacro %}

{% macro record_built_vars(results) %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {%- if whole_build_succeeded(results) -%}
        {{ return(adapter.dispatch('record_built_vars', 'retail_segments')()) }}
    {%- endif -%}
    {%- if not unsuccessful_results(results) -%}
        {{ return(adapter.dispatch('finish_built_vars', 'retail_segments')()) }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}

{% macro default__record_built_vars() -%}
    {%- if not database_is_a_file() -%}
        {{ return('') }}
    {%- endif -%}
    create schema if not exists landing;
    create or replace table landing.built_vars as
        select
            ({{ _stamp_vars_json_sql() }}) as vars_json,
            true as valid,
            ({{ _stamp_inputs_key_sql() }}) as inputs_key,
            false as unfinished
{%- endmacro %}

{% macro spark__record_built_vars() -%}
    {{ return('') }}
{%- endmacro %}

{% macro default__finish_built_vars() -%}
    {%- if not _built_vars_exists() -%}
        {{ return('') }}
    {%- endif -%}
    update landing.built_vars set unfinished = false
{%- endmacro %}

{% macro spark__finish_built_vars() -%}
    {{ return('') }}
{%- endmacro %}

{% macro _built_vars_exists() -%}
    {{ return(run_query(
        "select count(*) from information_schema.tables where table_catalog = current_database()"
        ~ " and table_schema = 'landing' and table_name = 'built_vars'").columns[0].values()[0] > 0) }}
{%- endmacro %}

{% macro invalidate_built_vars() %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('invalidate_built_vars', 'retail_segments')()) }}
{% endmacro %}

{% macro default__invalidate_built_vars() -%}
    {%- if not _built_vars_exists() -%}
        {{ return('') }}
    {%- endif -%}
    {#- records of earlier versions have neither column: an unknown inputs key differs from every
        key, so such a record holds again only after a whole build -#}
    alter table landing.built_vars add column if not exists inputs_key varchar;
    alter table landing.built_vars add column if not exists unfinished boolean default false;
    update landing.built_vars set
        valid = valid
            and vars_json is not distinct from ({{ _stamp_vars_json_sql() }})
            and inputs_key is not distinct from ({{ _stamp_inputs_key_sql() }}),
        unfinished = true
{%- endmacro %}

{% macro spark__invalidate_built_vars() -%}
    {{ return('') }}
{%- endmacro %}
