"""The `perfgroup` console script: `perfgroup audit` as monitoring runs it, without click.

Importing click is a third of a static audit's time (about 20 ms of 60 here), and NHC, Nagios
and cron run the audit every few minutes on every node. The plain forms (`audit`, `--json`,
`--group G`, `--dest P`, `--format F`, `--textfile-dir D`, each at most once, written out in full)
run the same engine calls as commands/audit.py and print the same bytes; everything else (other
commands, --help, -i, --functional, abbreviations, colour on a terminal, any error) goes to the
click command line, which therefore also renders every error exactly as before.
"""

from __future__ import annotations

import os
import sys


def audit(argv: list[str]) -> int | None:
    """The exit code of a plain audit it printed, or None: nothing printed, click's turn."""
    if argv[:1] != ["audit"]:
        return None
    from .engine.options import BY_NAME, plain_args

    plain = plain_args(argv, "audit", flags=("--json",))
    if plain is None:
        return None
    from .engine import errors

    fmt = "json" if "--json" in plain else plain.get("--format", str(BY_NAME["format"].default))
    if fmt not in BY_NAME["format"].choices:
        return None
    encoding = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "")
    if encoding != "utf8" or (fmt == "text" and not os.environ.get("NO_COLOR") and sys.stdout.isatty()):
        return None  # click's stream wrapping and colours
    from .engine.audit import output as audit_output

    try:
        text, worst = audit_output(plain.get("--group", str(BY_NAME["group"].default)), plain.get("--dest"), fmt,
                                   plain.get("--textfile-dir"))
    except errors.PerfgroupError:
        return None  # read-only so far (the textfile is written atomically or not at all)
    if "\x1b" in text:
        return None  # click strips escape sequences from what it prints to a pipe
    sys.stdout.write(text)
    sys.stdout.flush()
    return errors.exit_code("audit", worst)


def main() -> None:
    code = audit(sys.argv[1:])
    if code is not None:
        from .engine.errors import exit_now

        exit_now(code)
    from .cli import main as click_main

    click_main()
