"""The store: studies, trials, attempts and reports in SQLite or PostgreSQL."""

from costtune.store.engine import costtune_home, default_db_url, resolve_db_url
from costtune.store.store import (
    AttemptEnd,
    AttemptInfo,
    AuditEntry,
    CapChange,
    ClaimedTrial,
    OpenAttempt,
    Orphan,
    Proposal,
    Store,
    StudyInfo,
    study_scope,
)

__all__ = [
    "AttemptEnd",
    "AttemptInfo",
    "AuditEntry",
    "CapChange",
    "ClaimedTrial",
    "OpenAttempt",
    "Orphan",
    "Proposal",
    "Store",
    "StudyInfo",
    "costtune_home",
    "default_db_url",
    "resolve_db_url",
    "study_scope",
]
