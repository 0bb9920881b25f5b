"""What every command shares: the state object, the options accepted after any subcommand, and
the error boundary that turns every exception into one line on stderr and an :class:`ExitCode`.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import orjson

from logarchive import logsetup
from logarchive.base import StopEvent
from logarchive.config import Config, load_config
from logarchive.errors import ConfigError, LogarchiveError
from logarchive.plugins import Registry
from logarchive.secrets import redact
from logarchive.status import ExitCode

# C0 controls (newline, carriage return, ESC of ANSI sequences...), DEL, C1 controls, the Unicode
# line and paragraph separators, and lone surrogates (which no terminal can even be sent).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def human(text: str, *, keep: str = "") -> str:
    """``text`` made safe for one human-readable line: every control character (see
    ``_CONTROL``) but those in ``keep`` becomes its Python escape (``\\n``, ``\\r``,
    ``\\x1b``, ``\\ud800``), so a run id or an error from a source can neither forge a line
    nor recolour the terminal. JSON output never goes through it: it stays exact."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep
                        else m.group().encode("unicode_escape").decode("ascii"), text)


def say(text: str, *, err: bool = False) -> None:
    """Print one human-readable line, escaped with :func:`human`."""
    click.echo(human(text), err=err)


def say_block(text: str, *, err: bool = False) -> None:
    """Print a multi-line report: :func:`human`, keeping its own newlines."""
    click.echo(human(text, keep="\n"), err=err)


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_COMMAND = "logarchive.command"  # ctx.meta key: the command being run, for the error line


class State:
    """What the group options decided, shared by every command (``ctx.obj``)."""

    def __init__(self, verbosity: int, config_path: str | None, log_json: bool | None) -> None:
        self.verbosity = verbosity
        self.config_path = config_path
        self.log_json = log_json

    def config(self, registry: Registry | None = None) -> Config:
        return load_config(self.config_path, registry=registry)


def config_option(func: Any) -> Any:
    """``-c/--config``, ``-v`` and ``-q`` accepted after the subcommand too
    (``logarchive export -c FILE -q``)."""

    def remember(ctx: click.Context, _param: Any, value: str | None) -> None:
        if value is not None:
            ctx.find_object(State).config_path = value

    def verbosity(ctx: click.Context, param: Any, value: int) -> None:
        if value:
            state = ctx.find_object(State)
            state.verbosity += value if param.name == "more" else -value
            logsetup.configure(state.verbosity, json=state.log_json)

    func = click.option("-q", "--quiet", "less", count=True, expose_value=False,
                        callback=verbosity, help="Less logging.")(func)
    func = click.option("-v", "--verbose", "more", count=True, expose_value=False,
                        callback=verbosity, help="More logging.")(func)
    return click.option("-c", "--config", "config_path", metavar="FILE", expose_value=False,
                        callback=remember, help="Config file (overrides the group option).")(func)


json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


def dump_json(doc: Any) -> None:
    click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def exit_with(ok: bool) -> NoReturn:
    sys.exit(ExitCode.OK if ok else ExitCode.FAILED)


def install_signal_handlers(
    stop: StopEvent, doing: str = "finishing current batches, taking no new runs",
) -> None:
    """SIGTERM, SIGINT and SIGHUP set ``stop`` (and say ``doing``: what the command does before
    it stops); a second one stops the process now.

    SIGHUP (the terminal or the ssh session went away) is a stop like the others: without a
    handler it would kill the process mid-run, skipping the clean stop. Its notice may have no
    terminal left to go to: a failed write never escapes the handler.
    """

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            # Second signal: stop now, even if a run is stuck in a read that never returns (the
            # worker threads would be joined forever). Like a kill: nothing partial is visible
            # under a final name, the kernel drops the run claims, the ledger says in_progress.
            _notice(f"received {signal.Signals(signum).name} again: stopping now")
            os._exit(ExitCode.for_signal(signum))
        stop.signal_number = signum
        stop.set()
        _notice(f"received {signal.Signals(signum).name}: {doing}")

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, handler)


def _notice(message: str) -> None:
    """One line on stderr, if stderr can still be written (after SIGHUP it may not)."""
    try:
        click.echo(message, err=True)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


_GONE_ERRNOS = (errno.EPIPE, errno.EIO)  # the reader closed the pipe; the terminal hung up


@contextmanager
def printing_may_stop() -> Iterator[None]:
    """Print a command's results to a stdout whose reader may go away (``| head -1``, a closed
    terminal): the printing stops there, the command goes on and exits with its own status.
    What is left to print is discarded (stdout becomes /dev/null, so the final flush at exit
    cannot fail either)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _GONE_ERRNOS:
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _verbatim(text: str) -> str:
    """Mark every paragraph so click prints its lines as they are (a table stays a table)."""
    return "\n\n".join(f"\b\n{paragraph}" for paragraph in text.split("\n\n"))


class Group(click.Group):
    """A click group that remembers which command runs; the root one is the error boundary.

    Errors are converted here and nowhere else: a :class:`LogarchiveError` becomes its message and
    its own exit code (``ConfigError``: 2), any other exception one line naming the command and
    the exception, and :attr:`ExitCode.FAILED`; Ctrl-C outside an export (which handles its
    signals itself) ``interrupted`` and :attr:`ExitCode.SIGINT`. The traceback only with ``-v``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("epilog"):
            kwargs["epilog"] = _verbatim(kwargs["epilog"])
        super().__init__(*args, **kwargs)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_COMMAND] = f"{ctx.command_path} {name}"
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except LogarchiveError as error:  # a config's errors, one per line; others one line
            _fail(ctx, f"error: {error}", error.exit_code, lines=isinstance(error, ConfigError))
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", ExitCode.SIGINT)
        except Exception as error:
            command = ctx.meta.get(_COMMAND, ctx.command_path)
            detail = " ".join(str(error).split())  # one line, whatever the exception says
            hint = "" if _verbosity(ctx) > 0 else " (run with -v for the traceback)"
            _fail(ctx, f"error: {command} failed: {type(error).__name__}: {detail}{hint}",
                  ExitCode.FAILED)


def _verbosity(ctx: click.Context) -> int:
    return ctx.obj.verbosity if isinstance(ctx.obj, State) else 0


def _fail(ctx: click.Context, message: str, code: int, lines: bool = False) -> NoReturn:
    (say_block if lines else say)(redact(message), err=True)
    if _verbosity(ctx) > 0:
        click.echo(redact(traceback.format_exc()), err=True)
    sys.exit(code)
