"""The bounds on numbers a user may give, in one place (sweep files, the Python API, CLI flags).

Every bound keeps a number representable where it goes: integers in the store's signed 64-bit
columns and in numpy, seconds and counts small enough that sums and products stay exact. Money has
its own bounds in ``costtune.money`` (``MAX_USD``, ``MAX_USD_PER_HOUR``).
"""

from __future__ import annotations

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1  # trial numbers and report steps: the store's 32-bit integer columns
MAX_SECONDS = 365 * 24 * 3600  # one year: the longest trial, start-up or trace time a sweep may name
MAX_WORKERS = 10_000  # trials at once (resources.workers, --workers)
MAX_GRID_POINTS = 100_000  # grid points per parameter; a grid's total size is never built whole
MAX_STEPS = 10**9  # resources.simulation.max_steps
MAX_PREEMPTIONS_PER_HOUR = 3600  # one a second
MAX_FORECAST_RUNS = 1000  # costtune plan --runs: about 1.5 s of CPU each for the examples
MAX_JOBS = 256  # costtune plan --jobs: worker processes

__all__ = ["INT32_MAX", "INT64_MAX", "INT64_MIN", "MAX_FORECAST_RUNS", "MAX_GRID_POINTS", "MAX_JOBS",
           "MAX_PREEMPTIONS_PER_HOUR", "MAX_SECONDS", "MAX_STEPS", "MAX_WORKERS"]
