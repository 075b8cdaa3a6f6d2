"""Part III of the study: the classifier that assigns a part II segment from R, F and M.

Searches RandomForest and GradientBoosting (fast search by default, the study's full grids with
meta.classifier.search = 'full'), keeps the better, and serialises it with skops. Only the
customers the clustering was fitted on (is_fit_sample) are trained and tested on.

Returns one row per fit (key: model_version): the registry fields (ml.model_registry reads them)
and the results candidates (ml.classifier_metrics) and customers (ml.ml_classifier_predictions, from
which the class metrics and confusion matrix are computed in SQL) as nested columns. Thin shell
over retail_segments.ml.classifier.fit_segment_classifier.
"""

from retail_segments.frames import frame
from retail_segments.ml import fit_segment_classifier


def model(dbt, session):
    dbt.config(materialized="table")
    rfm = frame(
        dbt.ref("customer_rfm"),
        ["customer_id", "recency_days", "frequency", "monetary", "rfm_as_of"],
        order_by=["customer_id"],
    )
    embeddings = frame(
        dbt.ref("customer_embeddings"),
        ["customer_id", "tsne_segment_name", "is_fit_sample"],
        order_by=["customer_id"],
    )
    window = frame(dbt.ref("int_sales_lines__data_window"))
    return fit_segment_classifier(rfm, embeddings, window, dbt.config.get("meta"))
