"""The ``kvscope`` command line: a thin click shell over the library, one module per command.

Commands are listed in ``COMMANDS`` and imported only when used, so ``kvscope memory`` answers
without importing torch. Errors: a usage error exits 2, a failure at run time exits 1, Ctrl+C 130,
each with one line on stderr and no traceback (``KVSCOPE_DEBUG=1`` shows one); see ``main``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from kvscope import __version__
from kvscope.cli.common import CONTEXT_SETTINGS
from kvscope.errors import KvscopeError, Terminated

# name -> "module:attribute" of a click.Command. A command whose module is absent is not listed.
COMMANDS: dict[str, str] = {
    "info": "kvscope.cli.info:info",
    "capture": "kvscope.cli.capture:capture",
    "analyze": "kvscope.cli.analyze:analyze",
    "compare": "kvscope.cli.compare:compare",
    "prune": "kvscope.cli.prune:prune",
    "caching": "kvscope.cli.caching:caching",
    "memory": "kvscope.cli.memory:memory",
    "mas": "kvscope.cli.mas:mas",
    "bench": "kvscope.cli.bench:bench",
    "view": "kvscope.cli.view:view",
}


class LazyGroup(click.Group):
    """A group that imports each command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="kvscope")
def cli() -> None:
    """See, measure and shrink the KV cache of a transformer language model.

    \b
    Examples:
      kvscope info                         # facts about the embedded SmolLM2-135M model
      kvscope capture --prompt "Hello" --out hello.kvs --attention
      kvscope analyze --out kvscope-out    # every figure, report.html and metrics.json

    Run 'kvscope COMMAND --help' for a command's options and an example.
    """


def _fail(message: str, code: int) -> None:
    message = " ".join(str(message).split()) or "unknown error"
    click.echo(f"kvscope: error: {message}", err=True)
    sys.exit(code)


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _termination_as_exception() -> Iterator[None]:
    """While the CLI runs, SIGTERM and SIGHUP raise ``Terminated`` (a BaseException, like Ctrl+C's
    KeyboardInterrupt), so every ``with`` block removes its temporaries; old handlers come back after.
    A signal the caller ignores (``nohup`` ignores SIGHUP) or handles itself is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    present = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    wanted = [s for s in present if signal.getsignal(s) == signal.SIG_DFL]
    old = {s: signal.signal(s, _raise_terminated) for s in wanted}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point with kvscope's error policy.

    Exit codes: 0 success; 2 a caller's mistake (bad option value, unreadable or invalid input file,
    invalid model config, corrupted snapshot), one sentence naming the option or file; 1 a failure at run
    time; 130 Ctrl+C; 128 + N on signal N (SIGTERM 143, SIGHUP 129). Always one line on stderr, never a
    traceback (``KVSCOPE_DEBUG=1`` prints one before that line; the exit code stays the same).
    """
    os.environ["MPLBACKEND"] = "Agg"  # the CLI draws headless; the library itself never picks a backend
    try:
        return _main(argv)
    finally:
        if argv is None:  # the real process: a Ctrl+C while the interpreter shuts down exits quietly
            _quiet_interrupts_at_exit()


def _quiet_interrupts_at_exit() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _debug_traceback() -> None:
    """With ``KVSCOPE_DEBUG=1``, the traceback of the error being handled (the exit code stays the same)."""
    if os.environ.get("KVSCOPE_DEBUG") == "1":
        import traceback

        traceback.print_exc()


def _main(argv: list[str] | None) -> Any:
    try:
        with _termination_as_exception():
            return cli.main(args=argv, prog_name="kvscope", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click turns Ctrl+C (and EOF at a prompt) into Abort
        if isinstance(exc.__context__, KeyboardInterrupt):
            _fail("interrupted", 130)
        _fail("aborted", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Terminated as exc:
        _fail(f"terminated by {exc}", 128 + exc.signum)
    except click.UsageError as exc:
        hint = f" (see 'kvscope {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except KvscopeError as exc:
        _debug_traceback()
        _fail(flag_message(exc, sys.argv[1:] if argv is None else argv), exc.exit_code)
    except MemoryError:
        _fail("out of memory; try a shorter prompt or a smaller model", 1)
    except OSError as exc:
        _debug_traceback()
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _fail(f"input/output error{where}: {exc.strerror or exc}", 1)
    except Exception as exc:  # the last line of defence against a traceback
        _debug_traceback()
        _fail(_runtime_message(exc), 1)


def flag_message(exc: KvscopeError, argv: list[str]) -> str:
    """The library's message with the parameter it names (``exc.param``) spelled as the command's flag."""
    param, message = getattr(exc, "param", None), str(exc)
    command = next((a for a in argv if not a.startswith("-")), None)
    if not param or command not in COMMANDS:
        return message
    module, attr = COMMANDS[command].split(":")
    options = getattr(importlib.import_module(module), attr).params
    flags = [
        o
        for p in options
        if param == p.name or param in getattr(p, "library_params", ())
        for o in p.opts
        if o.startswith("--") and o not in getattr(p, "aliases", ())
    ]
    if not flags:
        return message
    return re.sub(rf"(?<![\w-]){re.escape(param)}\b", flags[0], message, count=1)


def _runtime_message(exc: Exception) -> str:
    """One line for an unexpected failure; known run-time families get a plain sentence."""
    name = type(exc).__name__
    if name == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return "the accelerator ran out of memory; try a shorter prompt, --dtype bfloat16 or --device cpu"
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"internal error ({name}: {first}); please report it (set KVSCOPE_DEBUG=1 for a traceback)"
