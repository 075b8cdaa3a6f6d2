{#-
  Incoming daily files, typed like the raw file. Lines are numbered after every raw-file line:
  source_row_number = 1,000,000,000 x (the file's rank by file name, then by full path for equal
  names in other folders) + its position in the file, so file order is kept across files and a
  rebuild numbers every line the same way. It is the order prepare checks new files against the
  loaded ones in (retail_segments.ops.preflight.daily_file_order): a file named to sort after them
  gets numbers after theirs, whatever folder of RETAIL_INCOMING_GLOB it lies in. With no incoming
  file the source, and so this model, is empty.
-#}
with

source as (

    select * from {{ source('online_retail', 'incoming_lines') }}

),

ranked as (

    select
        *,
        dense_rank() over (
            order by regexp_extract(source_file, '[^/]*$', 0), source_file
        ) as file_rank
    from source

),

numbered as (

    select
        cast(1000000000 as bigint) * file_rank + file_row_number as source_row_number,
        *
    from ranked

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
