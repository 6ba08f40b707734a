"""A finding and its severity: the one definition of the severities, their order and their Nagios
values (core layer). Rules yield Findings; the audit's exit code, the text, JSON, Nagios and
Prometheus formats and the fleet view all rank and count by these.
"""

from __future__ import annotations

from .tuples import NamedTuple

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
SEVERITIES = (OK, WARNING, CRITICAL, UNKNOWN)
# Nagios plugin values (also the audit's exit codes and the Prometheus sample values).
VALUE = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
# Worst last: critical > unknown > warning > ok (Nagios's own ordering of states for a summary).
RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


class Finding(NamedTuple):
    id: str
    severity: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self._asdict())


def worst(severities: object) -> str:
    """The worst of an iterable of severities (OK for none)."""
    return max(severities, key=RANK.__getitem__, default=OK)  # type: ignore[call-overload,no-any-return]
