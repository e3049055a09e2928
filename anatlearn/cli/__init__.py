"""The ``anatlearn`` command line. Each sub-command lives in its own module of this package and registers
itself on :data:`app`; :func:`main` turns every :class:`~anatlearn.errors.AnatlearnError` into one clear
line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import platform
import signal
import sys
import warnings

import typer

from anatlearn.cli.helpformat import HelpGroup, install
from anatlearn.errors import AnatlearnError

app = typer.Typer(
    name="anatlearn",
    help="Anatomy-informed contrastive foundation models for brain MRI (AnatCL and baselines).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=HelpGroup,
)

# What `anatlearn version` reports (anatlearn.provenance.versions), by distribution name: read from the installed
# packages' metadata, so that --version answers without importing torch (issue 37).
_VERSION_DISTRIBUTIONS = {"torch": "torch", "numpy": "numpy", "sklearn": "scikit-learn", "nibabel": "nibabel",
                          "nilearn": "nilearn", "pandas": "pandas", "scipy": "scipy"}


def _installed_versions(distributions: list[str]) -> dict[str, str]:
    """{distribution: version} read from the ``NAME-VERSION.dist-info`` folder names on sys.path (one listing
    per entry), the rest from importlib.metadata: its import and look-ups were a third of `--version`."""
    wanted = {d.lower().replace("-", "_"): d for d in distributions}
    found: dict[str, str] = {}
    for entry in sys.path:
        with contextlib.suppress(OSError):
            for item in os.listdir(entry or "."):
                if not item.endswith(".dist-info"):
                    continue
                name, _, version = item.removesuffix(".dist-info").partition("-")
                dist = wanted.get(name.lower().replace(".", "_"))
                if dist and version and dist not in found:
                    found[dist] = version
    missing = [d for d in distributions if d not in found]
    if missing:
        from importlib import metadata

        for dist in missing:
            with contextlib.suppress(metadata.PackageNotFoundError):
                found[dist] = metadata.version(dist)
    return found


def _print_version(value: bool) -> None:
    if value:
        from anatlearn import __version__

        installed = _installed_versions(list(_VERSION_DISTRIBUTIONS.values()))
        found = {"python": platform.python_version(),
                 **{name: installed[dist] for name, dist in _VERSION_DISTRIBUTIONS.items() if dist in installed}}
        typer.echo(f"anatlearn {__version__}")
        typer.echo(", ".join(f"{k} {v}" for k, v in found.items()))
        typer.echo("(as imported, in JSON: anatlearn version)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Anatomy-informed contrastive foundation models for brain MRI (AnatCL and baselines)."""


# Sub-command modules; each defines its commands with ``@app.command()``. A module that is not written yet
# is skipped so that the rest of the CLI keeps working.
_COMMAND_MODULES = ("synth", "pretrain", "embed", "evaluate", "report", "prep", "demo", "checkpoint", "study",
                    "brain_age", "harmonize", "explain", "weights", "finetune", "bids", "check")

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def _register(command: str | None = None) -> None:
    """Import the command modules (each registers its commands on :data:`app`). With ``command`` (the word
    after ``anatlearn``), stop once it is registered: typer builds the parameters of every registered command
    before it parses anything, so running or asking help of one command builds a few, not all (start-up)."""
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"anatlearn.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"anatlearn.cli.{name}":
                raise
        if command is not None and command in _registered_names():
            break
    install(app)


def _registered_names() -> set[str]:
    return {info.name for info in [*app.registered_commands, *app.registered_groups] if info.name}


def _tune_malloc() -> None:
    """Keep freed memory in the process (glibc only; ``ANATLEARN_MALLOC_TUNING=0`` turns it off).

    glibc hands every large freed block back to the kernel, so each training step or embedding batch
    re-faults its activations page by page. ``M_MMAP_MAX=0`` and a large ``M_TRIM_THRESHOLD`` keep them in
    the process: faster steps and embedding for a higher peak RSS (measured in benchmarks/RESULTS.md); the
    arithmetic is unchanged. Done here, for the command line's own process, never on library import."""
    if os.environ.get("ANATLEARN_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: serve large blocks from the heap, not from fresh mmaps
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: do not give the heap top back on every free
    except (OSError, AttributeError):
        pass


def _terminate(signum, frame) -> None:
    """SIGTERM (a scheduler's time limit, ``kill``) ends a command the way Ctrl-C does: cleanly, with a message."""
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning) -> None:
    """anatlearn's own warnings (what it could not check) as one ``anatlearn: warning:`` line; others as usual."""
    if getattr(category, "__module__", "").startswith("anatlearn"):
        typer.echo(f"anatlearn: warning: {message}", err=True)
    else:
        _default(message, category, filename, lineno, file, line)


def _usage_error(exc) -> int:
    """A click usage error as one line, with the help command of the sub-command it came from."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    typer.echo(f"anatlearn: error: {exc.format_message()}{where}", err=True)
    return EXIT_USER_ERROR


def _plain_message(exc: AnatlearnError) -> str:
    """The error's own message. An error raised in a DataLoader worker process comes back re-raised by torch
    with the worker's traceback as its message; the user gets the one line it ends with."""
    text = str(exc)
    marker = f"{type(exc).__module__}.{type(exc).__name__}: "
    if "Original Traceback" in text and marker in text:
        text = text.rsplit(marker, 1)[1].strip()
    return text


def _internal_error(exc: BaseException, argv: list[str]) -> str:
    """The one line for an unexpected exception. Its traceback goes to a file in the temporary directory
    (named in the line), or to stderr with ``ANATLEARN_DEBUG=1``."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = " ".join(str(exc).split()) or "(no message)"
    line = f"anatlearn: internal error: {type(exc).__name__}: {message}"
    if os.environ.get("ANATLEARN_DEBUG", "") not in ("", "0"):
        sys.stderr.write(text)
        return line
    try:
        fd, path = tempfile.mkstemp(prefix="anatlearn-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"anatlearn {' '.join(argv)}\n{text}")
    except OSError:
        return f"{line} (run again with ANATLEARN_DEBUG=1 to see the traceback)"
    return f"{line} (traceback written to {path}; ANATLEARN_DEBUG=1 prints it)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``anatlearn`` script. A usage error (unknown option, bad value) and an
    :class:`AnatlearnError` from any command are printed as one ``anatlearn: error:`` line with exit status 2;
    Ctrl-C or SIGTERM as one line with exit status 130 (commands that can resume say how); any other
    exception as one ``anatlearn: internal error:`` line with exit status 1 (:func:`_internal_error`)."""
    from anatlearn.cli.flags import with_option_names
    from anatlearn.cli.vocabulary import click_exceptions, rewrite_deprecated

    click = click_exceptions()
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        # the same answer as the eager option, before the 16 command modules are registered (start-up time)
        with contextlib.suppress(typer.Exit):
            _print_version(True)
        return 0

    _tune_malloc()
    argv = rewrite_deprecated(list(sys.argv[1:] if argv is None else argv))
    _register(argv[0] if argv and not argv[0].startswith("-") else None)
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _terminate)
    warnings.showwarning = _show_warning
    try:
        rv = app(args=argv, prog_name="anatlearn", standalone_mode=False)
    except click.NoArgsIsHelpError:  # `anatlearn evaluate` alone: typer has printed its help
        return 0
    except click.UsageError as exc:
        return _usage_error(exc)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("anatlearn: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        typer.echo(f"anatlearn: error: {exc.format_message()}", err=True)
        return EXIT_USER_ERROR
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AnatlearnError as exc:
        typer.echo(f"anatlearn: error: {with_option_names(_plain_message(exc), argv)}", err=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        typer.echo("anatlearn: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not the user's input: one line, the traceback kept for the report
        typer.echo(_internal_error(exc, argv), err=True)
        return EXIT_INTERNAL_ERROR
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # python -m anatlearn.cli
    sys.exit(main())
