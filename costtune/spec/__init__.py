"""The sweep file: sweep.py validates the whole file, resources.py its ``resources`` section."""

from costtune.spec.resources import Resources, Simulation, parse_resources
from costtune.spec.sweep import SAMPLER_TYPES, Budget, SweepSpec, load_sweep, parse_sweep

__all__ = ["SAMPLER_TYPES", "Budget", "Resources", "Simulation", "SweepSpec", "load_sweep", "parse_resources",
           "parse_sweep"]
