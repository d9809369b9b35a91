"""One line between flags and parameters: each command's defaults live once, in its settings dataclass,
and each setting has one spelling across commands.

- every option whose name is a field of the command's settings dataclass has that field's default (the CLI
  reads it from there), and every field is an option; the library entry point takes the same defaults;
- every option is spelled ``--`` + its name in kebab case (a few declared exceptions), the same in every
  command; the seeds' spellings (``--prune_layers``, ``--max_new_tokens``) are accepted, never shown.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import click
import pytest

from kvscope.analyze.settings import AnalyzeSettings, CompareSettings
from kvscope.bench.settings import BenchSettings
from kvscope.caching.settings import CachingSettings
from kvscope.capture.settings import CaptureSettings
from kvscope.cli import COMMANDS
from kvscope.cli.common import Opt
from kvscope.mas.settings import MasCommandSettings
from kvscope.memory.settings import MemorySettings
from kvscope.prune.settings import PruneSettings
from kvscope.view.settings import ViewSettings

SETTINGS = {
    "analyze": AnalyzeSettings,
    "compare": CompareSettings,
    "prune": PruneSettings,
    "bench": BenchSettings,
    "caching": CachingSettings,
    "capture": CaptureSettings,
    "mas": MasCommandSettings,
    "view": ViewSettings,
    "memory": MemorySettings,
}
NO_SETTINGS = {"info": "the model options only"}
# Options whose command-line default is None: the command (or the library) resolves it from the settings,
# because None also means something ("every line of --data", "--ratio needs --strategy").
RESOLVED_LATER = {("bench", "tasks"), ("bench", "samples"), ("prune", "ratio")}
LIBRARY = {
    "analyze": "kvscope.analyze.analysis:analyze",
    "bench": "kvscope.bench.benchmark:bench",
    "caching": "kvscope.caching.explain:explain_caching",
    "capture": "kvscope.capture.capturing:capture",
    "prune": "kvscope.prune.pruning:compare_pruning",
    "memory": "kvscope.memory.estimate:estimate_memory",
}
# Where the library's default differs on purpose.
LIBRARY_DIFFERS = {
    ("prune", "strategy"): "ks.compare_pruning evicts with snapkv unless told; the command evicts nothing unasked",
    ("bench", "samples"): "None: the settings' samples per built-in task, or every line of data",
}
# Options spelled other than --name-in-kebab-case, the same in every command.
SPELLED_APART = {"as_json": "--json", "fmt": "--format", "tasks": "--task", "settings": "--setting"}
SPELLED_APART |= {"do_scan": "--scan"}  # analyze's --scan/--no-scan
# kvscope memory names its options as its page's state does (kvscope/memory/web), one command only.
SPELLED_APART |= {"model_name": "--model", "gpu_name": "--gpu", "list_catalog": "--list", "force_serve": "--serve"}


def command(name: str) -> click.Command:
    module, attr = COMMANDS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def options(name: str) -> dict[str, click.Option]:
    return {p.name: p for p in command(name).params if isinstance(p, click.Option)}


def field_defaults(settings: type) -> dict:
    return {f.name: f.default for f in dataclasses.fields(settings)}


def text(value) -> str:
    """A default as the command line sees it: a tuple as its comma-joined items, a path as its text."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value) if isinstance(value, (Path, str)) else repr(value)


def default_of(name: str, opt: click.Option):
    """The default the command runs with when the option is not given."""
    value = opt.get_default(click.Context(command(name)), call=False)
    if type(value).__name__ == "Sentinel":  # click 8.2+: not set; a flag is off, a repeatable option empty
        return () if opt.multiple else (False if opt.is_flag else None)
    return value


def test_every_command_has_settings_or_a_reason():
    assert set(COMMANDS) == set(SETTINGS) | set(NO_SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_option_defaults_are_the_settings_defaults(name):
    opts = options(name)
    for field, default in field_defaults(SETTINGS[name]).items():
        assert field in opts, f"{name}: settings field {field} has no option"
        if (name, field) in RESOLVED_LATER:
            shown = str(default).split(",")[0].strip("()'")  # the help states the default: [5; ...]
            assert default_of(name, opts[field]) in (None, ()) and shown in opts[field].help
            continue
        assert text(default_of(name, opts[field])) == text(default), f"{name} --{field}"


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_the_library_takes_the_settings_defaults(name):
    module, attr = LIBRARY[name].split(":")
    params = inspect.signature(getattr(importlib.import_module(module), attr)).parameters
    shared = [f for f in field_defaults(SETTINGS[name]) if f in params and (name, f) not in LIBRARY_DIFFERS]
    assert shared, name
    for field in shared:
        assert text(params[field].default) == text(field_defaults(SETTINGS[name])[field]), f"{name}: {field}"


def spelling(opt: click.Option) -> str:
    return next(o for o in opt.opts if o.startswith("--") and o not in getattr(opt, "aliases", ()))


def test_one_spelling_per_option_across_commands():
    spelled: dict[str, set[str]] = {}
    for name in COMMANDS:
        for dest, opt in options(name).items():
            spelled.setdefault(dest, set()).add(spelling(opt))
    wrong = {d: s for d, s in spelled.items() if s != {SPELLED_APART.get(d, "--" + d.replace("_", "-"))}}
    assert wrong == {}


def test_aliases_are_accepted_and_hidden_from_help():
    seen = 0
    for name in COMMANDS:
        ctx = click.Context(command(name))
        shown = command(name).get_help(ctx)
        for opt in options(name).values():
            for alias in getattr(opt, "aliases", ()):
                seen += 1
                assert alias in opt.opts and alias not in shown.replace(spelling(opt), ""), (name, alias)
    assert seen >= 20  # mas's run.py spellings, prune's --prune_layers / --prune_heads, --model_name


def test_every_option_is_declared_through_the_shared_helper():
    plain = {(n, d) for n in SETTINGS for d, o in options(n).items() if d in field_defaults(SETTINGS[n])}
    assert {(n, d) for n, d in plain if not isinstance(options(n)[d], Opt)} == set()
