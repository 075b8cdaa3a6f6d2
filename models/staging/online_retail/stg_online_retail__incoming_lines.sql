{#-
  Incoming daily files, typed like the raw file. Lines are numbered after every raw-file line:
  source_row_number = 1,000,000,000 x (the file's rank by name) + line within the file, so file
  order is kept across files and a rebuild numbers every line the same way. With no incoming file
  the model is empty (same columns).
-#}
{%- set incoming = source('online_retail', 'incoming_lines') -%}
{%- set has_files = raw_source_files('online_retail', 'incoming_lines') | length > 0 -%}
with

{% if has_files -%}
source as (

    select * from {{ incoming }}

),

numbered as (

    -- DuckDB scans the files in name order and each file in line order
    select
        row_number() over () as scan_row_number,
        dense_rank() over (order by filename) as file_rank,
        *
    from source

),

renumbered as (

    select
        cast(1000000000 as bigint) * file_rank
            + scan_row_number - min(scan_row_number) over (partition by filename) + 1
            as source_row_number,
        *
    from numbered

),
{%- else -%}
renumbered as (

    -- no incoming file: an empty relation with the source's columns
    select
        cast(null as bigint) as source_row_number,
        cast(null as varchar) as filename,
        cast(null as varchar) as InvoiceNo,
        cast(null as varchar) as StockCode,
        cast(null as varchar) as Description,
        cast(null as integer) as Quantity,
        cast(null as timestamp) as InvoiceDate,
        cast(null as double) as UnitPrice,
        cast(null as integer) as CustomerID,
        cast(null as varchar) as Country
    where false

),
{%- endif %}

renamed as (

    select
        -- ids
        source_row_number,
        InvoiceNo as invoice_no,
        StockCode as stock_code,
        CustomerID as customer_id,

        -- descriptive
        Description as description,
        Country as country,
        filename as source_file,

        -- numerics
        Quantity as quantity,
        UnitPrice as unit_price,

        -- timestamps
        InvoiceDate as invoice_at,

        -- flags
        InvoiceNo like 'C%' as is_cancellation

    from renumbered

),

final as (

    select * from renamed

)

select * from final
