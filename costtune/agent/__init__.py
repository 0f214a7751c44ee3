"""What runs beside a trial, wherever it runs: supervise.py watches one local attempt.

The modules here are started as their own processes (``python -I .../supervise.py``), so they
import nothing from costtune and only the standard library: they must start in milliseconds and
work in whatever environment the trial gets.
"""
