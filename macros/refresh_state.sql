{#-
  on-run-end: a rebuild from scratch finished. `prepare` records in the landing folder
  (refresh-pending.json, retail_segments.ops.preflight.refresh_pending) that the inputs need one,
  so that a rebuild that fails or is killed half-way is done again by the next build rather than
  taken for done (dbt replaces one relation after the other). A `dbt build --full-refresh` of the
  whole project in which no node ended in error, failure or skip (whole_build_succeeded()) marks
  it done. DuckDB writes the mark here; the Spark launcher writes it in Python after its build.
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
    copy (select false as pending)
    to {{ string_literal(landing_dir() ~ '/refresh-pending.json') }} (format json)
{%- endmacro %}

{% macro spark__mark_refresh_done() -%}
    {{ return('') }}
{%- endmacro %}
