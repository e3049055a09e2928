"""Help pages that fit the terminal: plain text (no boxes), every word whole, commands grouped by workflow.

typer's rich panels cut long words (``descriptor-regress…``) in narrow terminals and its plain pages break
at hyphens (``no-`` / ``nifti``); here every page is wrapped by :mod:`textwrap` at spaces only, so an option,
method or path is never split. Flags show no value placeholder, a list option shows its element type, and a
default shows one way (``[default: 50]``, also for the options that default to a stored config's value)."""

from __future__ import annotations

import re
import shutil
import textwrap

from typer.core import TyperCommand, TyperGroup

try:  # the click that typer runs on: its vendored copy (typer >= 0.20), else click
    from typer._click.core import Command
except ImportError:
    from click.core import Command

# The main help's sections, in the order a user meets them; a command not listed goes under "Other".
WORKFLOW = (
    ("Data", ("synth", "check")),
    ("Pretrain", ("pretrain", "weights", "study")),
    ("Features", ("embed", "inspect", "export")),
    ("Evaluate", ("evaluate", "report", "finetune", "predict")),
    ("Clinical", ("brain-age", "harmonize", "explain")),
    ("Preparation of raw T1w scans", ("prep", "bids")),
    ("Other", ("demo", "version")),
)

_LIST = re.compile(r"<list\[([^\]]+)\]>")
_STR_DEFAULT = re.compile(r"\[default: \(([^)]*)\)\]")


def _width() -> int:
    return max(40, min(shutil.get_terminal_size((80, 24)).columns, 100))


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False) or [indent.rstrip()]


def write_rows(formatter, title: str, rows: list[tuple[str, str]]) -> None:
    """A section of ``name  description`` rows: the description wrapped at spaces beside (or under) the name."""
    width = _width()
    first = min(max((len(n) for n, _ in rows), default=0), 30) + 4
    lines = [f"{title}:"]
    for name, text in rows:
        indent = " " * first
        if len(name) + 4 > first:  # a long name on its own line, the text under it
            lines.append(f"  {name}")
            lines += _wrap(text, width, indent) if text else []
            continue
        wrapped = _wrap(text, width, indent) if text else [""]
        lines.append(f"  {name}".ljust(first) + wrapped[0][first:])
        lines += wrapped[1:]
    formatter.write("\n".join(line.rstrip().replace("\xa0", " ") for line in lines) + "\n\n")


def _record(param, ctx) -> tuple[str, str] | None:
    rv = param.get_help_record(ctx)
    if rv is None or getattr(param, "hidden", False):
        return None
    name, text = rv
    if param.param_type_name == "argument":
        name = param.metavar or param.name.upper()
    name = _LIST.sub(r"<\1>", name)
    if getattr(param, "is_flag", False):
        name = name.replace(" <bool>", "")
    text = _STR_DEFAULT.sub(r"[default: \1]", text)
    if (getattr(param, "nargs", 1) or 1) > 1:  # --shape X Y Z: the default as it is typed, 61 73 61
        text = re.sub(r"\[default: ([^\]]*)\]", lambda m: f"[default: {m.group(1).replace(', ', ' ')}]", text)
    # a short default stays whole and beside its label
    return name, re.sub(r"\[default: [^\]]{1,30}\]", lambda m: m.group(0).replace(" ", "\xa0"), text)


def _help_text(formatter, text: str | None) -> None:
    if not text:
        return
    width = _width()
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    formatter.write("\n" + "\n".join("\n".join(_wrap(p, width, "  ")) + "\n" for p in paragraphs) + "\n")


def _usage_pieces(command, ctx) -> list[str]:
    """``[OPTIONS] BIDS_DIR OUTPUT_DIR ...``: positional arguments by their upper-case names."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument" and not getattr(param, "hidden", False):
            name = param.metavar or param.name.upper()
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def _write_params(command, ctx, formatter) -> None:
    args, opts = [], []
    for param in command.get_params(ctx):
        rv = _record(param, ctx)
        if rv is not None:
            (args if param.param_type_name == "argument" else opts).append(rv)
    if args:
        write_rows(formatter, "Arguments", args)
    if opts:
        write_rows(formatter, "Options", opts)


def _bool_help_flag(option):
    """The help flag with the default False rather than None: typer 0.29 coerces a non-bool flag value through
    a pydantic adapter, so a parent group's unused help flag (None) imported pydantic (about 40 ms) on every
    `anatlearn CMD --help` and every command run; a bool default is passed through untouched."""
    if option is not None and option.default is None:
        option.default = False
    return option


class HelpCommand(TyperCommand):
    """A command whose help page is plain, whole-word text (see the module docstring)."""

    def get_help_option(self, ctx):
        return _bool_help_flag(super().get_help_option(ctx))

    def format_help(self, ctx, formatter) -> None:  # never typer's rich panels
        Command.format_help(self, ctx, formatter)

    def format_help_text(self, ctx, formatter) -> None:
        _help_text(formatter, self.help)

    def collect_usage_pieces(self, ctx) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx, formatter) -> None:
        _write_params(self, ctx, formatter)


class HelpGroup(TyperGroup):
    """A command group: its options, then its commands in the sections of :data:`WORKFLOW` (the main help)
    or in one section (``evaluate``), each described by the first paragraph of its help, wrapped."""

    def get_help_option(self, ctx):
        return _bool_help_flag(super().get_help_option(ctx))

    def format_help(self, ctx, formatter) -> None:
        Command.format_help(self, ctx, formatter)

    def format_help_text(self, ctx, formatter) -> None:
        _help_text(formatter, self.help)

    def format_options(self, ctx, formatter) -> None:
        _write_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx, formatter) -> None:
        commands = {name: cmd for name in self.list_commands(ctx)
                    if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden}
        summary = {name: " ".join((cmd.short_help or cmd.help or "").split("\n\n")[0].split())
                   for name, cmd in commands.items()}
        if ctx.parent is not None:  # a sub-group (evaluate): one section
            write_rows(formatter, "Commands", list(summary.items()))
            return
        placed = set()
        for title, names in WORKFLOW:
            rows = [(n, summary[n]) for n in names if n in commands]
            if title == "Other":
                rows += [(n, summary[n]) for n in commands if n not in placed and n not in names]
            placed.update(n for n, _ in rows)
            if rows:
                write_rows(formatter, title, rows)


def install(typer_app) -> None:
    """Give every command of ``typer_app`` (and of its sub-apps) the plain help page."""
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = HelpCommand
    for group in typer_app.registered_groups:
        group.cls = HelpGroup  # the add_typer record decides over the sub-app's own settings
        install(group.typer_instance)
