"""``kvscope view``: the view page of a snapshot or a bench output folder, served on 127.0.0.1 or
exported as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.cli.common import CONTEXT_SETTINGS, listen, option, serve
from kvscope.errors import UsageError
from kvscope.view.settings import ViewSettings as S


def _strategies(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from kvscope.prune.strategies import STRATEGIES, strategy_names

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        raise UsageError(f"--strategies: unknown {', '.join(bad) or '(none)'}; use some of {strategy_names()}")
    return names


def _check_source(source: Path) -> None:
    if not source.exists():
        raise UsageError(f"{source} does not exist: give a snapshot .kvs (kvscope capture) or a bench output folder")
    if not source.is_dir():
        raise UsageError(f"{source} is not a snapshot .kvs folder nor a bench output folder")


def _check_export(export: Path) -> None:
    if export.is_dir():
        raise UsageError(f"--export {export} is a directory: give a file name")
    parent = export.parent if str(export.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--export {export}: directory {parent} does not exist")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=click.Path(path_type=Path))
@option(
    "--strategies",
    "strategies",
    default=S.strategies,
    help="Comma-separated strategies (default: every registered one).",
)
@option("--step", "step", default=S.step, show_default=True, type=float, help="Ratio slider step (0 to 0.95).")
@option(
    "--export",
    "export",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the page as one self-contained HTML file instead of serving it.",
)
@option("--port", "port", default=S.port, type=int, help="Port on 127.0.0.1 (default: a free one).")
@option("--no-browser", "no_browser", is_flag=True, help="Serve without opening a browser.")
def view(source, strategies, step, export, port, no_browser):
    """Explore a captured cache and what each eviction strategy keeps, or a bench run's answers.

    \b
    SOURCE is a snapshot from 'kvscope capture --attention --queries' or a 'kvscope bench' output
    folder. The page runs offline: it holds every strategy's kept sets (the engine's own, at each
    slider stop) and makes no network request.
    \b
    Examples:
      kvscope capture -m embedded --prompt-file doc.txt --attention --queries -o doc.kvs
      kvscope view doc.kvs                       # serve on 127.0.0.1 and open a browser
      kvscope view doc.kvs --export doc.html     # one self-contained file
      kvscope view bench_out/
    """
    from kvscope.view.export import stops
    from kvscope.view.viewer import view_data

    names = _strategies(strategies)
    if not 0.001 <= step <= 0.5:
        raise UsageError(f"--step must be between 0.001 and 0.5, got {step:g}")
    stops(step)
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65,535 (got {port:,})")
    _check_source(source)
    if export is not None:
        _check_export(export)
        from kvscope.fileio import write_text
        from kvscope.view.page import export_html

        write_text(export, export_html(view_data(source, names, step)))
        click.echo(f"kvscope view: wrote {export}", err=True)
        return
    from kvscope.view.page import bind, render_index

    server, files = listen(bind, port)
    try:
        files["index.html"] = render_index(view_data(source, names, step)).encode("utf-8")
    except BaseException:
        server.server_close()
        raise
    serve(server, "view", not no_browser)
