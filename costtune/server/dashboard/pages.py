"""The dashboard's HTML pages: a server-rendered frame per page with its first data inlined.

Each page is a small HTML document that loads the shipped assets (``/static/``: uPlot, the
dashboard's own script and styles) and carries its first view's data as JSON in a
``<script type="application/json">`` block, so the first view needs no second request. The script
draws every value with ``textContent`` (never as markup), and the inlined JSON escapes ``<``, ``>``
and ``&``, so a study or parameter named ``<script>...`` shows as text. Titles go through
``html.escape``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_NAV = (("studies", "/", "Studies"), ("running", "/running", "Running now"), ("money", "/money", "Money"),
        ("schedules", "/schedules", "Schedules"))


def _json_block(data: Any) -> str:
    from costtune.server.dashboard.text import with_text

    text = json.dumps(with_text(data), separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def page(kind: str, title: str, data: Any, *, heading: str | None = None, crumbs: str = "") -> str:
    """A whole page: ``kind`` picks what the script draws (studies, study, trial, money, running)."""
    here = "studies" if kind in ("study", "trial") else kind
    nav = "".join(f'<a href="{href}"{" class=on" if key == here else ""}>{label}</a>' for key, href, label in _NAV)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)} · costtune</title>
<link rel="stylesheet" href="/static/uPlot.min.css"><link rel="stylesheet" href="/static/dash.css">
</head><body data-page="{escape(kind)}">
<header><a class="brand" href="/">costtune</a><nav>{nav}</nav>
<span class="live" id="live" title="updates every few seconds">live</span>
<form id="tokenform" autocomplete="off"><input id="token" type="password" placeholder="dashboard token"
 aria-label="dashboard token"><button type="submit">save token</button></form></header>
<main><div class="crumbs">{crumbs}</div><h1 id="title">{escape(heading if heading is not None else title)}</h1>
<div id="app"></div></main>
<script type="application/json" id="initial">{_json_block(data)}</script>
<script src="/static/uPlot.iife.min.js"></script><script src="/static/ui.js"></script>
<script src="/static/charts.js"></script><script src="/static/dash.js"></script>
</body></html>"""


def crumbs_for(study: str | None = None, trial: int | None = None) -> str:
    from urllib.parse import quote

    parts = ['<a href="/">studies</a>']
    if study is not None:
        parts.append(f'<a href="/studies/{quote(study, safe="")}">{escape(study)}</a>')
    if trial is not None:
        parts.append(f"trial {int(trial)}")
    return " / ".join(parts)


__all__ = ["crumbs_for", "page"]
