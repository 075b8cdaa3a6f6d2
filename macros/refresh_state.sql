{#-
  Whether a rebuild from scratch that the inputs need has not finished
  (retail_segments.ops.preflight.PendingRefresh): dbt replaces one relation after the other, so a
  rebuild that fails or is killed half-way would otherwise be taken for done by the next build.

  - on-run-start, mark_refresh_pending(): a build or run whose prepared stamp says the inputs need
    a rebuild records it in the warehouse (landing.refresh_pending, with the stamp's causes),
    before any relation is replaced; a `prepare` alone, or a build refused before dbt, records
    nothing;
  - on-run-end, mark_refresh_done(): a whole `dbt build` in which no node ended in error, failure
    or skip (whole_build_succeeded()) drops the table, so a rebuilt warehouse equals a fresh build.

  The record is in the warehouse, so another landing folder cannot hide it. DuckDB writes it here;
  the Spark launcher keeps its own (a file in its folder) in Python around its build.
-#}
{% macro mark_refresh_pending() %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('mark_refresh_pending', 'retail_segments')()) }}
{% endmacro %}

{% macro default__mark_refresh_pending() -%}
    {%- set stamp = _stamp_sql('full_refresh', "{'full_refresh': 'boolean'}") -%}
    {%- if not database_is_a_file() or not run_query(stamp).columns[0].values()[0] -%}
        {{ return('') }}
    {%- endif -%}
    create schema if not exists landing;
    create or replace table landing.refresh_pending as
        select true as pending, ({{ _stamp_sql('cast(to_json(refresh_causes) as varchar)',
            "{'refresh_causes': 'varchar[]'}") }}) as reasons_json
{%- endmacro %}

{% macro spark__mark_refresh_pending() -%}
    {{ return('') }}
{%- endmacro %}

{% macro mark_refresh_done(results) %}
    {%- if not execute or not whole_build_succeeded(results) -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('mark_refresh_done', 'retail_segments')()) }}
{% endmacro %}

{% macro default__mark_refresh_done() -%}
    {%- if not database_is_a_file() -%}
        {{ return('') }}
    {%- endif -%}
    drop table if exists landing.refresh_pending
{%- endmacro %}

{% macro spark__mark_refresh_done() -%}
    {{ return('') }}
{%- endmacro %}
