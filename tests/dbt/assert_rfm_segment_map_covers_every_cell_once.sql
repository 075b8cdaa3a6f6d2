-- Every (r_score, f_score) cell of the 5 x 5 grid maps to exactly one segment.
-- Returns the cells that map to none or to several.
with

scores as (

    select * from (values (1), (2), (3), (4), (5)) as s (score)  -- noqa: AL05

),

grid as (

    select r.score as r_score, f.score as f_score
    from scores as r
    cross join scores as f

),

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

final as (

    select grid.r_score, grid.f_score, count(segment_map.rfm_segment) as n_segments
    from grid
    left join segment_map
        on grid.r_score = segment_map.r_score
        and grid.f_score = segment_map.f_score
    group by grid.r_score, grid.f_score
    having count(segment_map.rfm_segment) <> 1

)

select * from final
