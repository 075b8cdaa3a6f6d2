{#-
  Append-only RFM history: each run computes the RFM of marts.customer_rfm as of var('rfm_as_of')
  (macro customer_rfm_as_of) and replaces that as-of date's rows, leaving every other date as it
  was. `dbt build` adds the build's own as-of date; `python -m retail_segments backfill` runs this
  model (and what depends on it) once per month end with --vars '{rfm_as_of: ...}'. Re-running a
  date rewrites the same rows, so a backfill run twice changes nothing.
  `dbt build --full-refresh` starts the history afresh with the build's as-of date only.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='rfm_as_of',
        on_schema_change='fail'
    )
}}

{{ customer_rfm_as_of(var('rfm_as_of')) }}
