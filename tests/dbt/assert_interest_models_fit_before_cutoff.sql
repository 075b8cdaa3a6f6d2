-- No line on or after var('new_customer_cutoff') reached a fitted model: each of the three fits
-- (product categories, interest clustering, classifier) records the latest invoice time of the
-- rows it was trained on, computed from those very rows, and it must be before the cutoff; the
-- cutoff each model was fitted with must be the var. A missing model is a failure too.
with

expected as (

    select * from (
        values
        ('product_categories'),
        ('customer_interest_clustering'),
        ('customer_interest_classifier')
    ) as models (model_name)  -- noqa: AL05

),

fits as (

    select * from {{ ref('ml_customer_interest_model_fits') }}

),

final as (

    select expected.model_name, fits.fit_window_end, fits.cutoff_at
    from expected
    left join fits on expected.model_name = fits.model_name
    where fits.model_name is null
        or fits.fit_window_end is null
        or fits.fit_window_end >= {{ timestamp_var('new_customer_cutoff') }}
        or fits.cutoff_at <> {{ timestamp_var('new_customer_cutoff') }}

)

select * from final
