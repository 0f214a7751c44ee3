"""``costtune scheduler``: the daemon that starts due scheduled runs (costtune/schedules/daemon.py)."""

from __future__ import annotations

import click

from costtune.cli.common import db_option, handled, open_store, out_console
from costtune.cli.schedule import _group_db, _say
from costtune.words import plural


@click.command("scheduler")
@db_option
@click.option("--poll", default="15s", show_default=True, help="How often the store is asked for due runs.")
@click.option("--once", is_flag=True, help="Run what is due now, then exit (for cron or a systemd timer).")
@click.option("--reap-every", help="Also run `costtune reap` at this interval (e.g. 10m; needs AWS credentials).")
@click.option("--refresh-prices-cron", help='Also run `costtune prices refresh --provider aws` on this cron (UTC).')
@handled
def scheduler(db: str | None, poll: str, once: bool, reap_every: str | None, refresh_prices_cron: str | None) -> None:
    """Run due schedules from the store until stopped (SIGTERM: the running sweep is stopped and resumed later).

    Any number of scheduler processes may share one store: each run is claimed exactly once.
    """
    from costtune.schedules.daemon import SchedulerDaemon
    from costtune.spec.cron import parse_cron
    from costtune.spec.fields import duration

    poll_s = duration(poll, "--poll")
    reap_s = None if reap_every is None else duration(reap_every, "--reap-every")
    if refresh_prices_cron:
        parse_cron(refresh_prices_cron, "--refresh-prices-cron")
    store = open_store(_group_db(db), create=True)
    daemon = SchedulerDaemon(store, say=_say)
    if once:
        runs = daemon.run_pending()
        out_console.print(plural(len(runs), "run"), highlight=False)
        return
    daemon.serve(poll_s=poll_s, reap_every_s=reap_s, prices_cron=refresh_prices_cron, db_url=store.url)
