{#-
  on-run-end: a rebuild from scratch finished. `prepare` records in the warehouse
  (landing.refresh_pending, retail_segments.ops.preflight.PendingRefresh) that the inputs need
  one, so that a rebuild that fails or is killed half-way is done again by the next build rather
  than taken for done (dbt replaces one relation after the other). A `dbt build --full-refresh` of
  the whole project in which no node ended in error, failure or skip (whole_build_succeeded())
  marks it done (drops the table, so a rebuilt warehouse equals a fresh build). DuckDB writes the mark here; the Spark launcher writes its own (a file in its
  folder) in Python after its build.
-#}
{% macro mark_refresh_done(results) %}
    {%- if not execute or not flags.FULL_REFRESH or not whole_build_succeeded(results) -%}
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
