"""Search spaces: parameter distributions, their parsing and grid plans."""

from costtune.space.distributions import (
    Beta,
    Categorical,
    Distribution,
    Exponential,
    Gamma,
    Int,
    LogNormal,
    LogUniform,
    Normal,
    Uniform,
    Values,
    parse_distribution,
)
from costtune.space.space import GridPlan, SearchSpace

__all__ = [
    "Beta",
    "Categorical",
    "Distribution",
    "Exponential",
    "Gamma",
    "GridPlan",
    "Int",
    "LogNormal",
    "LogUniform",
    "Normal",
    "SearchSpace",
    "Uniform",
    "Values",
    "parse_distribution",
]
