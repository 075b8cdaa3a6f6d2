{#-
  on-run-end: a rebuild from scratch finished. `prepare` records in the landing folder
  (refresh-pending.json, retail_segments.ops.preflight.refresh_pending) that the inputs need one,
  so that a rebuild that fails or is killed half-way is done again by the next build rather than
  taken for done (dbt replaces one relation after the other). A `dbt build --full-refresh` of the
  whole project (not is_partial_run()) in which no node ended in error, failure or skip marks
  it done. DuckDB writes the mark here; the Spark launcher writes it in Python after its build.
-#}
{% macro mark_refresh_done(results) %}
    {%- if not execute or flags.WHICH != 'build' or not flags.FULL_REFRESH -%}
        {{ return('') }}
    {%- endif -%}
    {%- if is_partial_run() -%}
        {{ return('') }}
    {%- endif -%}
    {%- if unsuccessful_results(results) -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('mark_refresh_done', 'retail_segments')()) }}
{% endmacro %}

{% macro default__mark_refresh_done() -%}
    copy (select false as pending)
    to {{ string_literal(landing_dir() ~ '/refresh-pending.json') }} (format json)
{%- endmacro %}

{% macro spark__mark_refresh_done() -%}
    {{ return('') }}
{%- endmacro %}
