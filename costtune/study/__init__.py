"""In-process studies (study.py: create or load, optimize, ask/tell) and the Trial object (trial.py)."""

from costtune.study.study import Objective, Study, create_study, load_study
from costtune.study.trial import Trial

__all__ = ["Objective", "Study", "Trial", "create_study", "load_study"]
