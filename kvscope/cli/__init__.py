"""The ``kvscope`` command line: a thin click shell over the library, one module per command.

Commands are listed in ``COMMANDS`` and imported only when used, so ``kvscope memory`` answers
without importing torch. Errors: a usage error exits 2, a failure at run time exits 1, each with
one line on stderr and no traceback (``KVSCOPE_DEBUG=1`` shows one).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from kvscope import __version__
from kvscope.cli.common import CONTEXT_SETTINGS
from kvscope.errors import KvscopeError

# name -> "module:attribute" of a click.Command. A command whose module is absent is not listed.
COMMANDS: dict[str, str] = {
    "info": "kvscope.cli.info:info",
    "capture": "kvscope.cli.capture:capture",
    "analyze": "kvscope.cli.analyze:analyze",
    "prune": "kvscope.cli.prune:prune",
    "caching": "kvscope.cli.caching:caching",
    "memory": "kvscope.cli.memory:memory",
    "mas": "kvscope.cli.mas:mas",
    "bench": "kvscope.cli.bench:bench",
}



class LazyGroup(click.Group):
    """A group that imports each command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if importlib.util.find_spec(COMMANDS[n].split(":")[0]) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        if importlib.util.find_spec(module) is None:
            return None
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


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point with kvscope's exit-code and one-line error conventions."""
    debug = os.environ.get("KVSCOPE_DEBUG") == "1"
    try:
        return cli.main(args=argv, prog_name="kvscope", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.UsageError as exc:
        hint = f" (see 'kvscope {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except KvscopeError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except MemoryError:
        _fail("out of memory; try a shorter prompt or a smaller model", 1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        if debug:
            raise
        _fail(f"{type(exc).__name__}: {exc} (set KVSCOPE_DEBUG=1 for a traceback)", 1)
