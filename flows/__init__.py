"""Prefect flows (generate_clip, generate_storyboard, extend_clip, run_batch, sweep_archive,
cost_report): thin wiring of tasks, nothing else. They arrive with the issues that build them."""
