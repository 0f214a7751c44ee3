"""The store: studies, trials, attempts and reports in SQLite or PostgreSQL."""

from costtune.store.engine import costtune_home, default_db_url, resolve_db_url
from costtune.store.store import (
    AttemptEnd,
    AttemptInfo,
    ClaimedTrial,
    OpenAttempt,
    Orphan,
    Proposal,
    Store,
    StudyInfo,
)

__all__ = [
    "AttemptEnd",
    "AttemptInfo",
    "ClaimedTrial",
    "OpenAttempt",
    "Orphan",
    "Proposal",
    "Store",
    "StudyInfo",
    "costtune_home",
    "default_db_url",
    "resolve_db_url",
]
