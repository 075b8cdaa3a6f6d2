{#-
  The raw file's lines, renamed and typed (the source is already typed: every value was checked
  and landed exactly by `python -m retail_segments prepare`). source_row_number is the line's
  position in the file, recorded when the file was landed.
-#}
with

source as (

    select * from {{ source('online_retail', 'raw_lines') }}

),

renamed as (

    select
        -- ids
        cast(file_row_number as bigint) as source_row_number,
        InvoiceNo as invoice_no,
        StockCode as stock_code,
        CustomerID as customer_id,

        -- descriptive
        Description as description,
        Country as country,

        -- numerics
        Quantity as quantity,
        UnitPrice as unit_price,

        -- timestamps
        InvoiceDate as invoice_at,

        -- flags
        InvoiceNo like 'C%' as is_cancellation,

        -- lineage
        source_file,
        source_sha256

    from source

),

final as (

    select * from renamed

)

select * from final
