"""In-process studies: create or load (api.py), optimize (optimize.py), ask/tell (study.py), the
Trial object (trial.py), their money and dollar rungs (books.py) and output directories (output.py)."""

from costtune.study.api import create_study, load_study
from costtune.study.optimize import Objective
from costtune.study.study import Study
from costtune.study.trial import Trial

__all__ = ["Objective", "Study", "Trial", "create_study", "load_study"]
