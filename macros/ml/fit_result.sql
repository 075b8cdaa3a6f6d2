{#-
  The rows of one result of a fit, typed by the calling model's contract.

  A dbt Python model returns one table, but a fit produces results at several grains (per
  customer, per candidate model, per cluster). Each fit model therefore returns one row per fit,
  keyed, whose result tables are typed nested columns (lists of structs; retail_segments.ml.results).
  A contracted SQL model unpacks one of them with this macro: it selects every column the model's
  contract declares (or those named in `columns`), cast to the contract's data type, so each type
  is stated once, in the yml. `fits` is a fit model's name or a list of them (their rows are
  stacked, e.g. the PCA and t-SNE stages). Use it as a relation:

      with candidates as (select * from {{ fit_result(['fit_a', 'fit_b'], 'candidates') }}) ...
-#}
{% macro fit_result(fits, result, columns=none) -%}
    {%- set fits = [fits] if fits is string else fits -%}
    {%- set declared = model.columns.values() | list -%}
    {%- if columns is not none -%}
        {%- set declared = declared | selectattr('name', 'in', columns) | list -%}
    {%- endif -%}
    {#- at parse time dbt has not yet read the yml, so there are no columns to check yet -#}
    {%- if execute and declared | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "fit_result in " ~ model.name ~ ": the model's yml declares no columns to unpack from '"
            ~ result ~ "'") }}
    {%- endif -%}
    (
    {%- for fit in fits %}
        select
            {%- for column in declared %}
            cast(fit_row.{{ adapter.quote(column.name) }} as {{ column.data_type }})
                as {{ adapter.quote(column.name) }}{{ "," if not loop.last }}
            {%- endfor %}
        from (select {{ unnest_list(adapter.quote(result)) }} as fit_row from {{ ref(fit) }}) as unpacked
        {%- if not loop.last %}
        union all
        {%- endif %}
    {%- endfor %}
    )
{%- endmacro %}
