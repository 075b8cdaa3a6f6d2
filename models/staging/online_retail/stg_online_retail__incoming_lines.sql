{#-
  Incoming daily files, typed like the raw file. Lines are numbered after every raw-file line:
  source_row_number = 1,000,000,000 x (the file's rank by name) + its position in the file, so
  file order is kept across files and a rebuild numbers every line the same way. With no incoming
  file the source, and so this model, is empty.
-#}
with

source as (

    select * from {{ source('online_retail', 'incoming_lines') }}

),

numbered as (

    select
        cast(1000000000 as bigint) * dense_rank() over (order by source_file)
        + file_row_number as source_row_number,
        *
    from source

),

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

    from numbered

),

final as (

    select * from renamed

)

select * from final
