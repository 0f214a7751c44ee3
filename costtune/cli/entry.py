"""Where the ``costtune`` command starts (the console script and ``python -m costtune.cli``).

SIGINT and SIGTERM are handled before anything heavy is imported, so an interruption at any
moment (imports, opening the store, a run, its clean-up, a second Ctrl-C) ends the same way: exit
code 130, one line (``run`` says how to resume; other commands just "interrupted"), no traceback.
While a sweep's loop runs, the controller
puts its own handlers in place (first signal: stop the running trials and re-queue them; second:
without their grace period) and restores these afterwards.
"""

from __future__ import annotations

import signal
import sys
from typing import NoReturn

EXIT_INTERRUPTED = 130
HINT_RUN = "interrupted: running trials were stopped and re-queued; run the same command again to resume"
HINT_DEMO = "interrupted: running trials were stopped"  # each demo is a new study: running it again starts over
HINT = "interrupted"  # read-only and one-shot commands: there is nothing to resume
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_raised = False


def _interrupt(_signum: int, _frame: object) -> None:
    """Raise KeyboardInterrupt once; later signals change nothing (the first is on its way out)."""
    global _raised
    if _raised:
        return
    _raised = True
    raise KeyboardInterrupt


def install() -> None:
    for sig in _SIGNALS:
        signal.signal(sig, _interrupt)


def _quiet() -> None:
    """From here on the process is on its way out: signals change nothing."""
    global _raised
    _raised = True
    for sig in _SIGNALS:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:
            return  # not the main thread: our handlers are not installed either


def exit_interrupted(hint: str = HINT) -> NoReturn:
    """Ignore further signals, print ``hint`` on stderr and exit 130."""
    _quiet()
    sys.stderr.write(hint + "\n")
    sys.stderr.flush()
    sys.exit(EXIT_INTERRUPTED)


def hint_for(command: str | None) -> str:
    """The line for an interrupted ``command``: only ``run`` can be resumed by running it again."""
    return {"run": HINT_RUN, "demo": HINT_DEMO}.get(command or "", HINT)


def _run(args: list[str]) -> int:
    import click

    from costtune.cli.app import main as group

    try:
        code = group.main(args=args, prog_name="costtune", standalone_mode=False)
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        sys.stderr.write("Aborted!\n")
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:
        return 1
    return code if isinstance(code, int) else 0


def main(args: list[str] | None = None) -> NoReturn:
    install()
    args = sys.argv[1:] if args is None else list(args)
    try:
        try:
            code: object = _run(args)
        except SystemExit as exc:
            code = exc.code
    except KeyboardInterrupt:
        exit_interrupted(hint_for(next((a for a in args if not a.startswith("-")), None)))
    _quiet()
    sys.exit(code)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    main()
