"""Helpers for tests that check a SQLite store was only read."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def sqlite_rows(path: Path) -> list[str]:
    """Every row of the SQLite store at ``path``, as SQL (a read-only connection). Compare these, not the file's
    bytes: opening a store in WAL mode may checkpoint its write-ahead log, which rewrites bytes, never rows."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return list(conn.iterdump())
