"""``create_study`` and ``load_study``: open an in-process study, checking every argument first.

Bad arguments raise ``SpecError`` naming the argument and leave the store untouched. A study's
dollar cap is stored once; opening it again with another ``budget_usd`` is an error unless the
change is asked for (``change_cap=True``, or ``Study.set_cap``), and every change is recorded.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from costtune.errors import InputError, SpecError, StoreError
from costtune.history import Mode
from costtune.money import format_usd, micros_to_usd, rate_to_micros, usd_to_micros
from costtune.names import check_metric_name, check_param_names, check_study_name
from costtune.samplers import Sampler, check_sampler_for_scheduler, sampler_config
from costtune.schedulers import Scheduler, make_rung_scheduler, scheduler_config
from costtune.schedulers.hyperband import PLAN_KINDS
from costtune.space import SearchSpace
from costtune.store import Store, StudyInfo
from costtune.study.output import claim_output_dir, release_output_dir
from costtune.study.resume import Asked, check_unchanged
from costtune.study.study import Study
from costtune.words import article


def create_study(
    name: str,
    *,
    storage: str | Store | None = None,
    metric: str | None = None,
    mode: str | None = None,
    space: dict[str, Any] | SearchSpace | None = None,
    sampler: str | dict[str, Any] | Sampler | None = None,
    scheduler: dict[str, Any] | Scheduler | None = None,
    budget_usd: Any = None,
    usd_per_hour: Any = None,
    output_dir: str | Path | None = None,
    load_if_exists: bool = False,
    change_cap: bool = False,
) -> Study:
    """Create a study (or, with ``load_if_exists``, open the existing one of that name).

    ``scheduler``: ``{"type": "asha"|"sh"|"hyperband"|"bohb", "min_usd", "max_usd", "eta"}`` judges
    trials at dollar rungs (needs ``usd_per_hour``), or a custom ``Scheduler`` object; default FIFO.
    ``budget_usd``: the study's dollar cap, enforced through the ledger. ``usd_per_hour``: what a
    trial costs per hour of wall time, charged per millisecond (stored with the study; default 0).
    ``output_dir``: root of the study's own directory (default ``COSTTUNE_HOME/runs``).
    ``change_cap``: an existing study whose stored cap differs from ``budget_usd`` takes the new cap
    (recorded); without it that is an ``InputError``. ``metric`` (default ``"value"``; the sweep
    file's metric-name rule), ``mode`` (default ``"min"``) and ``sampler`` (default ``"random"``)
    of a new study. Continuing a study (``load_if_exists``) checks what is given against the stored
    study with the sweep file's resume rule (``costtune.study.resume``): a different metric, mode,
    space, sampler type or scheduler is an ``InputError`` naming the field and both values; an
    argument left out keeps the stored value. Raises ``SpecError`` for a bad argument,
    ``StoreError`` when the study exists and ``load_if_exists`` is False.
    """
    check_study_name(name, "name")
    if mode is not None and mode not in ("min", "max"):
        raise SpecError("mode", "must be min or max", mode)
    if metric is not None:
        check_metric_name(metric, "metric")
    rate = None if usd_per_hour is None else rate_to_micros(usd_per_hour, "usd_per_hour")
    cap = None if budget_usd is None else usd_to_micros(budget_usd, "budget_usd")
    sched_cfg = _scheduler(scheduler, mode=mode or "min", cap=cap)
    if rate is not None or not load_if_exists:  # else the rate left out is the stored study's, checked below
        _needs_rate(sched_cfg, rate or 0)
    search_space = space if isinstance(space, SearchSpace) else (SearchSpace.from_dict(space) if space else None)
    if search_space is not None:
        check_param_names(search_space.names, "space")  # the sweep file's parameter-name rule
    asked = {"type": sampler} if isinstance(sampler, str) else sampler if isinstance(sampler, dict) else {}
    check_sampler_for_scheduler(asked, sched_cfg, sampler_field="sampler", scheduler_field="scheduler")
    store = storage if isinstance(storage, Store) else Store(storage)
    info = store.find_study(name)
    if info is not None and not load_if_exists:
        raise StoreError(f"study {name!r} already exists; pass load_if_exists=True to continue it")
    if info is not None:
        _check_unchanged(info, metric, mode, search_space, sampler, scheduler, sched_cfg)
    if rate is None and load_if_exists:
        _needs_rate(sched_cfg, _stored_rate(info))
    if info is None:
        sampler_cfg = _sampler(sampler, search_space)
        spec: dict[str, Any] = {"resources": {"usd_per_hour": _text(rate or 0)}}
        if sched_cfg is not None:
            spec["scheduler"] = sched_cfg
        folder = claim_output_dir(output_dir, name, store=store.display_url)
        try:
            info = store.create_study(
                name, metric=metric or "value", mode=Mode(mode or "min"),
                space=search_space.to_dict() if search_space else {},
                sampler=sampler_cfg, spec=spec, budget_usd_micros=cap, queued=sampler_cfg.get("configs", []),
                output_dir=str(folder),
            )
        except StoreError:
            release_output_dir(folder)
            if not load_if_exists:
                raise
            info = store.get_study(name)  # another worker created it between our check and insert
            _check_unchanged(info, metric, mode, search_space, sampler, scheduler, sched_cfg)
    study = Study(store, info, sampler=sampler if isinstance(sampler, Sampler) else None,
                  scheduler=scheduler if not isinstance(scheduler, dict) else None, usd_per_hour=usd_per_hour)
    if cap is not None and cap != info.budget_usd_micros:
        if not change_cap:
            raise InputError(
                f"budget_usd: study {name!r} has a stored cap of {_cap(info.budget_usd_micros)}; asked for "
                f"{format_usd(cap)}. A study has one cap: pass change_cap=True, or call "
                f"study.set_cap({_text(cap)}, reason=...), to change it (the change is recorded)")
        study.set_cap(micros_to_usd(cap), reason="create_study(change_cap=True)")
    return study


def _sampler(sampler: str | dict[str, Any] | Sampler | None, space: SearchSpace | None) -> dict[str, Any]:
    if isinstance(sampler, Sampler):
        return {"type": "custom"}
    value = sampler if sampler is not None else "random"
    return sampler_config({"type": value} if isinstance(value, str) else value, space or SearchSpace({}))


def _check_unchanged(info: StudyInfo, metric: str | None, mode: str | None, space: SearchSpace | None,
                     sampler: Any, scheduler: Any, sched_cfg: dict[str, Any] | None) -> None:
    """The sweep file's resume rule (``costtune.study.resume``) for the arguments given."""
    asked = Asked(
        metric=metric, mode=mode, space=space,
        sampler=None if sampler is None or isinstance(sampler, Sampler) else _sampler(
            sampler, space or (SearchSpace.from_dict(info.space) if info.space else None)),
        scheduler=None if not isinstance(scheduler, dict) else (sched_cfg or {"type": "fifo"}),
    )
    check_unchanged(info, asked, says="create_study asks for", fix="use another name to start a new study",
                    api=True)


def load_study(name: str, *, storage: str | Store | None = None, sampler: Sampler | None = None,
               usd_per_hour: Any = None) -> Study:
    """Open an existing study; ``usd_per_hour`` defaults to the rate stored with it."""
    check_study_name(name, "name")
    if usd_per_hour is not None:
        rate_to_micros(usd_per_hour, "usd_per_hour")
    store = storage if isinstance(storage, Store) else Store(storage)
    return Study(store, store.get_study(name), sampler=sampler, usd_per_hour=usd_per_hour)


def _scheduler(value: Any, *, mode: str, cap: int | None) -> dict[str, Any] | None:
    """The normalised rung config (None for FIFO or a custom object), checked like a sweep file's
    (its rate by ``_needs_rate``, once the rate is known)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        if callable(getattr(value, "on_report", None)):  # a Scheduler object of the caller's own
            return None
        raise SpecError("scheduler", "must be a mapping such as {type: asha, min_usd: 0.01, max_usd: 0.09} or a "
                                     "Scheduler object (with on_report)", value)
    try:
        cfg = scheduler_config(value)
        if cfg["type"] != "fifo":
            make_rung_scheduler(cfg, mode=mode, budget_micros=cap)  # a budget too small for the plan fails here
    except SpecError as exc:
        if exc.path != "budget.usd":
            raise
        raise SpecError("budget_usd", exc.reason, exc.value) from None
    if cfg["type"] == "fifo":
        return None
    if cfg["type"] in PLAN_KINDS and cap is not None and "plan_usd_micros" not in cfg:
        cfg = {**cfg, "plan_usd_micros": cap}  # a raised cap repeats the brackets, never reshapes them
    return cfg


def _needs_rate(cfg: dict[str, Any] | None, rate: int) -> None:
    """``SpecError`` naming ``usd_per_hour`` when a rung scheduler would judge trials that cost nothing;
    ``rate`` in micro-dollars per hour (the one given, else the stored study's)."""
    if cfg is not None and rate == 0:
        raise SpecError("usd_per_hour", f"{article(cfg['type'])} {cfg['type']} scheduler judges trials by the "
                        "dollars they spend: give usd_per_hour > 0", rate)


def _stored_rate(info: StudyInfo | None) -> int:
    """The rate stored with a study, in micro-dollars per hour (0 for none, or no study)."""
    if info is None:
        return 0
    return rate_to_micros((info.spec.get("resources") or {}).get("usd_per_hour") or 0, "usd_per_hour")


def _text(micros: int) -> str:
    return f"{Decimal(micros).scaleb(-6).normalize():f}"


def _cap(micros: int | None) -> str:
    return "none" if micros is None else format_usd(micros)

