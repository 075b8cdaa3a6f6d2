"""Operations: what runs around dbt (input checks and landing, settings, the dbt runner, the
command line, publishing)."""
