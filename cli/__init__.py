"""The `reelflow` command line: one module per command, one error path for user mistakes."""
