{#-
  One row per day from 2010-01-01 to 2012-12-31: MetricFlow's time spine (the data run from
  2010-12-01 to 2011-12-09). Widen the range here if the raw file ever covers other years.
-#}
with

days as (

    {{ dbt.date_spine('day', "cast('2010-01-01' as date)", "cast('2013-01-01' as date)") }}

),

final as (

    select cast(date_day as date) as date_day
    from days

)

select * from final
