"""DuckDB views over the ledger, projections and reports (plain code, no Prefect)."""
