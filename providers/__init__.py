"""Protocol adapters, the model catalog, router, price book and poller (plain async code).

Nothing here imports Prefect: these are libraries tested without a server.
"""
