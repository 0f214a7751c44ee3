"""``costtune serve``: the worker API that agents on instances talk to (``server`` extra).

Starlette and uvicorn are imported only here and below, never by the core: ``costtune`` without
the ``server`` extra runs local and simulated sweeps, and ``costtune serve`` then says which extra
to install.
"""
