"""What the audit path does without re: the same answers as the regular expressions it replaces."""

from __future__ import annotations

import re

import pytest

from perfgroup.engine.capabilities import kernel_version
from perfgroup.engine.validate import name_ok

NAMES = ["perf_users", "_x", "a", "a" * 32, "a" * 33, "", "-a", "9a", "A", "perf-users", "perf.users", "perf users",
         "perf_users\n", "pérf", "a\u0660", "ab$", "_", "-", "a-b_c9"]
RELEASES = ["6.1.0-18-amd64", "5.10.0", "6.18.44-fc-v669", "4.19", "6", "6.", ".1", "x6.1", "10.20rc1", "6.1x",
            "\u0661.2", "", "6..1", "006.007-x"]


@pytest.mark.parametrize("name", NAMES)
def test_name_ok_is_the_name_regex(name: str) -> None:
    assert name_ok(name) is bool(re.match(r"[a-z_][a-z0-9_-]{0,31}\Z", name))


@pytest.mark.parametrize("release", RELEASES)
def test_kernel_version_is_the_version_regex(release: str) -> None:
    found = re.match(r"([0-9]+)\.([0-9]+)", release)
    assert kernel_version(release) == ((int(found.group(1)), int(found.group(2))) if found else (0, 0))


DOCUMENTS = ['{"a": 1, "b": [1.5, -2e3, true, false, null], "c": {"d": "\\u00e9\\n"}}', ' \n{"a": 1}\n\n', "[]", '"x"',
             "NaN", '{"a": Infinity}', "", "   ", "{", '{"a": 1} x', '{"a": 1}{}', "{'a': 1}", '{"a": "\x01"}',
             '{"a": 01}', "[" * 100 + "]" * 100, '{"a": 1,}']


@pytest.mark.parametrize("text", DOCUMENTS)
def test_record_loads_is_json_loads(text: str) -> None:
    import json
    import math

    from perfgroup.engine.state import loads

    try:
        expected: object = json.loads(text)
    except json.JSONDecodeError as error:
        with pytest.raises(json.JSONDecodeError) as raised:
            loads(text)
        assert (raised.value.msg, raised.value.lineno, raised.value.colno) == (error.msg, error.lineno, error.colno)
        return
    got = loads(text)
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(got, float) and math.isnan(got)
    else:
        assert got == expected and type(got) is type(expected)


FSTAB_LINES = ["tracefs /sys/kernel/tracing tracefs defaults 0 0", "  tracefs\t/sys/kernel/tracing  tracefs ", "",
               "# tracefs /x tracefs", "a b c # d e", "a\u00a0b c", "x\x0by z", "\t\t", "one"]


@pytest.mark.parametrize("line", FSTAB_LINES)
def test_fstab_fields_are_the_regex_fields(line: str) -> None:
    from perfgroup.engine.fstab import _fields

    expected = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", line.split("#", 1)[0])]
    assert [(f.group(), f.start(), f.end()) for f in _fields(line)] == expected


@pytest.mark.parametrize("text", ['{"a": 1', '{"a": "b', '{"a" 1}', "{", "[1,", '{"caps": ["x",'])
def test_record_loads_in_a_fresh_interpreter_raises_json_errors(text: str) -> None:
    """As the node audit runs it: json not imported yet (the C scanner cannot raise its own errors
    then), so a damaged record must still be a JSONDecodeError, never SystemError."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom perfgroup.engine.state import loads\n"
            "try:\n    loads(sys.argv[1])\nexcept ValueError as error:\n    print(type(error).__name__)\n")
    done = subprocess.run([sys.executable, "-S", "-c", code, text], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "JSONDecodeError", done.stdout + done.stderr
