"""The web dashboard: pages, a JSON API under ``/api/v1`` and shipped assets (``server`` extra).

``routes(store, access)`` gives the Starlette routes; ``costtune dashboard`` serves them alone and
``costtune serve`` beside the worker API. Read-only over the store except the token-guarded actions.
"""
