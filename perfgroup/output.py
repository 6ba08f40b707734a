"""Rendering for people (colour unless NO_COLOR or not a terminal) and for machines (JSON)."""

from __future__ import annotations

import json
import os
import sys

import click

from .engine.report_formats import escape as escape

COLOURS = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "magenta"}


def use_colour() -> bool | None:
    # click already strips colour when stdout is not a terminal; NO_COLOR (no-color.org) wins always.
    return False if os.environ.get("NO_COLOR") else None


def paint(text: str, colour: str, bold: bool = False) -> str:
    if os.environ.get("NO_COLOR"):
        return text
    return click.style(text, fg=colour, bold=bold)


def say(text: str = "") -> None:
    click.echo(text, color=use_colour())


def error(text: str) -> None:
    """One line on stderr; newlines in data are flattened so the error stays one line."""
    click.echo(paint("perfgroup: error: ", "red") + escape(" ".join(text.split("\n"))), err=True, color=use_colour())


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def severity_tag(severity: str) -> str:
    return paint(f"{severity.upper():8}", COLOURS.get(severity, "white"), bold=severity != "ok")
