"""The webhook relay (`reelflow relay`): receives the providers' deliveries, verifies them, and
wakes the flow runs suspended on their jobs (DESIGN.md §2: imports storage, models, settings)."""
