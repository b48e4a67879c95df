"""The ``anomstream`` command line. Each verb parses its options and calls one function elsewhere; the
verbs live in ``anomstream/commands/`` by what they are for (``setup``: broker, topics, data;
``replay``; ``models``: train, evaluate, the registry; ``serving``: the long-running processes and
the demo; ``analysts``: alerts, incidents, verdicts), their shared parts in ``commands/common.py``.

Heavy imports (TensorFlow, pandas) happen inside the verbs that need them, so ``anomstream broker
status`` answers in a fraction of a second. Every error a user can cause ends in one line on stderr
(``error: what went wrong: what to do``) and a nonzero exit: 2 for a bad invocation, 1 otherwise; the
traceback only with ``-v``.
"""

from __future__ import annotations

import signal
import sys
import traceback

import typer

# Importing the verbs registers them on the app, in this order (the order of `anomstream --help`).
from anomstream.commands import analysts, models, replay, serving, setup  # noqa: F401
from anomstream.commands.common import app, console, print_error, replay_app
from anomstream.commands.serving import _unknown_streams
from stream.errors import AnomstreamError

__all__ = ["_unknown_streams", "app", "main"]


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, kill, timeout) unwinds like Ctrl-C, so `finally` blocks stop what was
    # started (brokers, workers). The worker installs its own handler: finish the batch, commit.
    raise KeyboardInterrupt


def _is_usage_error(exc: Exception) -> bool:
    # typer ships its own copy of click, so click.UsageError is not the class it raises.
    return hasattr(exc, "format_message") and getattr(exc, "exit_code", None) == 2


def _replay_file_form(args: list[str], verb_at: int) -> list[str]:
    """``replay FILE ...`` is ``replay file FILE ...``: the word after ``replay`` that is neither a
    replay subcommand (kdd, ecg, sensor, file) nor an option is a file.

    >>> _replay_file_form(["replay", "weather.csv", "--schema", "w.toml"], 0)
    ['replay', 'file', 'weather.csv', '--schema', 'w.toml']
    >>> _replay_file_form(["replay", "kdd", "--limit", "5"], 0)
    ['replay', 'kdd', '--limit', '5']
    """
    at = verb_at + 1
    if verb_at >= len(args) or args[verb_at] != "replay" or at >= len(args) or args[at].startswith("-"):
        return args
    if args[at] in {command.name for command in replay_app.registered_commands}:
        return args
    return [*args[:at], "file", *args[at:]]


def main(argv: list[str] | None = None) -> None:
    """Run the command line; every failure ends here as one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    verb_at = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    verbose = any(a in ("-v", "--verbose") for a in args[:verb_at])  # the global option, before the verb
    args = _replay_file_form(args, verb_at)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(args=args, prog_name="anomstream", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        console.print("interrupted")
        sys.exit(130)
    except AnomstreamError as exc:
        if verbose:
            traceback.print_exc()
        print_error(str(exc))
        sys.exit(getattr(exc, "exit_code", 1))  # 75: a stuck Kafka call, restart me
    except Exception as exc:
        if _is_usage_error(exc):  # a bad option, value or verb (typer's click raises these)
            where = getattr(getattr(exc, "ctx", None), "command_path", "anomstream")
            print_error(f"{exc.format_message()} (see `{where} --help`)")  # type: ignore[attr-defined]
            sys.exit(2)
        # A bug, or a failure anomstream does not know how to explain.
        if verbose:
            traceback.print_exc()
        detail = str(exc) or type(exc).__name__
        print_error(f"{type(exc).__name__}: {detail} (run with -v for the traceback)")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
