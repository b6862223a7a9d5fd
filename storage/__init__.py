"""Archive backends, the job journal and the Parquet ledger writer (plain code, no Prefect)."""
