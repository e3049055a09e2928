"""``anatlearn version``: print versions (a command that always exists, so the CLI is never empty)."""

from __future__ import annotations

import json

import typer

from anatlearn.cli import app


@app.command("version")
def version_command() -> None:
    """Print anatlearn's version and the versions of the libraries it uses."""
    from anatlearn.provenance import versions

    typer.echo(json.dumps(versions(), indent=2))
