"""Prefect tasks over plain functions: preparation, submit, await, archive, inspect, record.
Secrets and concurrency limits are resolved here, never below."""
