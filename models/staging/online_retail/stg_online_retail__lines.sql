with

source as (

    select * from {{ source('online_retail', 'raw_lines') }}

),

numbered as (

    -- DuckDB reads the file in order; row_number() over () keeps that order as the line's identity
    select
        row_number() over () as source_row_number,
        *
    from source

),

renamed as (

    select
        -- ids
        cast(source_row_number as bigint) as source_row_number,
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
        InvoiceNo like 'C%' as is_cancellation

    from numbered

),

final as (

    select * from renamed

)

select * from final
