{#-
  RFM per customer as of var('rfm_as_of') (midnight). Only purchases strictly before that moment
  count, so an earlier as-of date gives the RFM of that moment.
  Scores 1-5 are quintiles by ntile(5); ties are broken by customer_id (ascending), so equal values
  can land in neighbouring quintiles but every build gives the same scores:
    r_score: most recent = 5 (order by recency_days desc, customer_id)
    f_score: most invoices = 5 (order by frequency, customer_id)
    m_score: most revenue = 5 (order by monetary, customer_id)
  The named segment comes from the seed rfm_segment_map (the classic R x F map).
  The query is the macro customer_rfm_as_of, which the segment history reuses for other dates.
-#}
{{ customer_rfm_as_of(var('rfm_as_of')) }}
