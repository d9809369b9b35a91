"""Options and helpers shared by the command modules.

Results go to stdout (a rich table, or JSON with ``--json``); progress and warnings go to stderr.

Validation helpers every command uses before it loads a model or creates a file (each raises a
one-line ``UsageError``, exit 2, naming the option): ``read_prompt`` / ``read_text_input`` (input
files: regular, at most 50 MB, UTF-8), ``check_utf8``, ``check_device``, ``check_model_options``,
``check_out_dir`` / ``check_out_file`` (create nothing) and ``check_snapshot_out``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kvscope.errors import UsageError
from kvscope.fileio import check_out_dir, check_out_file, check_utf8, read_text_input  # noqa: F401 (shared)

F = Callable[..., Any]
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def setup_logging(quiet: bool = False) -> None:
    """kvscope's warnings and progress on stderr; silence the libraries' chatter."""
    from rich.logging import RichHandler

    log = logging.getLogger("kvscope")
    if not log.handlers:
        handler = RichHandler(console=stderr_console(), show_time=False, show_path=False)
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()  # our own status line says what is happening
        import huggingface_hub

        huggingface_hub.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


class Opt(click.Option):
    """An option with one spelling: its first long name. ``aliases`` (the seeds' own spellings, such as
    ``--max_new_tokens``) are accepted but left out of ``--help``; ``params`` names the library parameters
    the option sets, so that ``kvscope.cli.flag_message`` spells an error about them as this flag."""

    def __init__(self, param_decls: list[str], aliases: tuple[str, ...] = (), params: tuple[str, ...] = (), **kw):
        super().__init__([*param_decls, *aliases], **kw)
        self.aliases, self.library_params = tuple(aliases), tuple(params)

    def get_help_record(self, ctx: click.Context):
        opts = self.opts
        self.opts = [o for o in opts if o not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def option(*decls: str, aliases: tuple[str, ...] = (), params: tuple[str, ...] = (), **kw: Any) -> Callable[[F], F]:
    """``click.option`` with one spelling (see :class:`Opt`); a ``default`` is read from the command's
    settings dataclass (``BenchSettings.samples``), where it lives once."""
    return click.option(*decls, cls=Opt, aliases=aliases, params=params, **kw)


def apply(f: F, *decorators: Callable[[F], F]) -> F:
    for d in reversed(decorators):
        f = d(f)
    return f


MODEL_HELP = "'embedded' (SmolLM2-135M, offline), 'tiny' (random GQA Llama), a Hugging Face id or a local folder."


def model_option(aliases: tuple[str, ...] = ()) -> Callable[[F], F]:
    return option(
        "-m",
        "--model",
        "model",
        aliases=aliases,
        default="embedded",
        show_default=True,
        envvar="KVSCOPE_MODEL",
        help=MODEL_HELP,
    )


def device_option(f: F) -> F:
    return option("--device", "device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps ...")(f)


def dtype_option(f: F) -> F:
    return option("--dtype", "dtype", default=None, help="float32 (CPU default), bfloat16 (GPU default), float16.")(f)


def model_options(f: F) -> F:
    """``--model``, ``--device``, ``--dtype``, ``--trust-remote-code``, ``--device-map``."""
    return apply(
        f,
        model_option(),
        device_option,
        dtype_option,
        option(
            "--trust-remote-code", "trust_remote_code", is_flag=True, help="Allow a hub model's own Python code to run."
        ),
        option(
            "--device-map", "device_map", default=None, help="'auto' shards a large model across GPUs (accelerate)."
        ),
    )


def out_option(default_folder: str | None, what: str, **kw: Any) -> Callable[[F], F]:
    """``-o/--out FOLDER``: where the command writes ``what`` (``default_folder`` from its settings)."""
    kw.setdefault("type", click.Path(path_type=Path))
    if default_folder is not None:
        kw.update(default=Path(default_folder), show_default=True)
    return option("-o", "--out", "out", help=what, **kw)


def force_option(f: F) -> F:
    """``--force``: replace an --out folder that holds files kvscope did not write (issue 19)."""
    return option(
        "--force",
        "force",
        is_flag=True,
        help="Replace an --out folder that holds files kvscope did not write (deletes them).",
    )(f)


def check_out(out: Path, command: str, force: bool = False, inputs: tuple | list = (), option: str = "--out") -> Path:
    """Before any work: ``out`` is a writable folder (or can be created), kvscope may write there
    (``kvscope.outdir``: new, empty or marked by kvscope, unless ``force``) and it is not, and does not
    hold, one of ``inputs``."""
    return check_out_dir(out, option, command=command, force=force, inputs=[i for i in inputs if i is not None])


def json_option(f: F) -> F:
    return option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")(f)


def repeats_option(default_repeats: int, help: str, **kw: Any) -> Callable[[F], F]:
    return option("--repeats", "repeats", default=default_repeats, show_default=True, help=help, **kw)


def samples_option(default_samples: int | None, help: str, **kw: Any) -> Callable[[F], F]:
    """``-n/--samples N``: how many samples (bench) or problems (mas) run."""
    return option("-n", "--samples", "samples", type=int, default=default_samples, help=help, **kw)


def seed_option(default_seed: int) -> Callable[[F], F]:
    return option("--seed", "seed", type=int, default=default_seed, show_default=True, help="Random seed.")


def threads_option(f: F) -> F:
    return option(
        "--threads",
        "threads",
        type=int,
        default=None,
        help="Torch threads [torch's default]. On a busy machine 1 can be far faster.",
    )(f)


def prompt_options(f: F) -> F:
    """``--prompt`` / ``--prompt-file`` / ``--truncate``."""
    return apply(
        f,
        option("-p", "--prompt", "prompt", default=None, help="Prompt text."),
        option(
            "--prompt-file",
            "prompt_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Read the prompt from a UTF-8 text file (a regular file, at most 50 MB).",
        ),
        option(
            "--truncate",
            "truncate",
            is_flag=True,
            help="Cut a prompt longer than the model's max positions (with a warning).",
        ),
    )


def read_prompt(prompt: str | None, prompt_file: Path | None, default: str | None = None) -> str:
    """The prompt text from ``--prompt`` or ``--prompt-file`` (not both), else ``default``.

    ``--prompt-file`` goes through ``read_text_input`` (regular file, at most 50 MB, UTF-8); a
    ``--prompt`` whose bytes were not UTF-8 is refused. Every failure is a ``UsageError`` naming the option.
    """
    if prompt is not None and prompt_file is not None:
        raise UsageError("give either --prompt or --prompt-file, not both")
    if prompt_file is not None:
        text = read_text_input(prompt_file, "--prompt-file")
    else:
        text = check_utf8(prompt, "--prompt") if prompt is not None else default
    if text is None or not text.strip():
        raise UsageError("the prompt is empty: pass --prompt TEXT or --prompt-file FILE with some text")
    return text


def check_device(device: str) -> str:
    """Validate a ``--device`` value before any model loads (the error names the ``device`` parameter,
    which ``kvscope.cli.flag_message`` spells as the command's flag)."""
    from kvscope.models import resolve_device

    return resolve_device(device)


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def check_model_options(device: str, dtype: str | None, device_map: str | None = None) -> None:
    """``--device``, ``--dtype`` and ``--device-map`` checked before any model loads or any file is created."""
    from kvscope.models import resolve_dtype

    resolve_dtype(dtype, check_device(device))
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise UsageError(f"unknown --device-map {device_map[:40]!r}: use one of {', '.join(DEVICE_MAPS)}")


def check_snapshot_out(out: Path, option: str = "--out") -> Path:
    """A snapshot destination: its folder exists and is writable, and ``out`` is absent or a snapshot."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write snapshot {option} {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write snapshot {option} {out}: directory {parent} is not writable")
    if os.path.lexists(out) and not (out.is_dir() and (out / "snapshot.json").is_file()):
        raise UsageError(f"cannot write snapshot {out}: it exists and is not a kvscope snapshot")
    return out


def load(
    model: str,
    device: str = "auto",
    dtype: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    refuse: tuple = (),
):
    """``load_model`` with a status line on stderr, after :func:`kvscope.archs.refuse_before_loading` has
    read the config (no weights) and found nothing the command cannot run: ``refuse`` adds the command's
    own checks (``config -> reason or None``)."""
    from kvscope.archs import refuse_before_loading
    from kvscope.models import load_model

    refuse_before_loading(model, *refuse, trust_remote_code=trust_remote_code)

    with stderr_console().status(f"loading model {model} ..."):
        return load_model(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, device_map=device_map)


def emit_json(obj: Any) -> None:
    from kvscope.fileio import to_jsonable

    click.echo(json.dumps(to_jsonable(obj), indent=2, allow_nan=False))


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """A two-column rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("name", style="bold")
    table.add_column("value")
    for name, value in rows:
        table.add_row(name, str(value))
    Console().print(table)


def listen(make_server: Callable[[int], Any], port: int) -> Any:
    """``make_server(port)`` (a server bound to 127.0.0.1:``port``), a port that cannot be bound being a
    one-line ``UsageError`` naming ``--port``."""
    try:
        return make_server(port)
    except OSError as exc:
        raise UsageError(f"--port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None


def serve(server: Any, command: str, open_browser: bool, query: str = "") -> None:
    """Serve ``server`` (bound to 127.0.0.1) until Ctrl+C, which ends the command with exit code 130 and one
    line; the server is closed in every case. Prints the page's URL (``query`` appended) on stderr and opens
    it in a browser when ``open_browser``."""
    import sys
    import webbrowser

    url = f"http://127.0.0.1:{server.server_address[1]}/{query}"
    try:
        click.echo(f"kvscope {command}: serving {url} (Ctrl+C stops)", err=True)
        if open_browser:
            webbrowser.open(url)
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo(f"kvscope {command}: stopped", err=True)
        sys.exit(130)
    finally:
        server.server_close()
