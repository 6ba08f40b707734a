"""Proof by running perf: an unprivileged identity holding the group must profile system-wide
through the copy; the same identity without the group must be refused."""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass
from typing import Callable

NOBODY = 65534
PERF_ARGS = ("stat", "-a", "-e", "cpu-clock", "--", "true")
TIMEOUT = 60


@dataclass(frozen=True)
class Probe:
    ran: bool  # the executable started
    returncode: int | None
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    member: Probe
    non_member: Probe
    stock: Probe | None  # the distribution's perf for the member, if there is one

    @property
    def member_ok(self) -> bool:
        return self.member.ran and self.member.returncode == 0

    @property
    def non_member_refused(self) -> bool:
        return not self.non_member.ran or self.non_member.returncode != 0

    @property
    def ok(self) -> bool:
        return self.member_ok and self.non_member_refused

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok, "member_ok": self.member_ok, "non_member_refused": self.non_member_refused,
            "member": asdict(self.member), "non_member": asdict(self.non_member),
            "stock": asdict(self.stock) if self.stock else None,
        }

    def lines(self) -> list[str]:
        out = [
            ("member (uid nobody + group): " + ("profiled system-wide" if self.member_ok else f"FAILED: {self.member.detail}")),
            ("non-member (uid nobody): " + ("refused" if self.non_member_refused else "ALLOWED: the copy is open to everyone")),
        ]
        if self.stock is not None:
            refused = not self.stock.ran or self.stock.returncode != 0
            out.append("stock perf for the member: " + ("refused -a, as expected" if refused else "allowed -a (perf_event_paranoid is low)"))
        return out


def drop_to(uid: int, gid: int, groups: list[int]) -> Callable[[], None]:
    """Child-side switch to an unprivileged identity (subprocess's user=/extra_groups= are 3.9+).
    setuid from root to a non-zero uid clears every capability, so the exec that follows gets
    only what the file grants: a 0750 copy stays closed to a non-member."""

    def switch() -> None:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    return switch


def probe(executable: str, groups: list[int]) -> Probe:
    try:
        result = subprocess.run(
            [executable, *PERF_ARGS], preexec_fn=drop_to(NOBODY, NOBODY, groups),
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, cwd="/", stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )
    except PermissionError:
        return Probe(ran=False, returncode=None, detail="permission denied (cannot execute)")
    except subprocess.TimeoutExpired:
        return Probe(ran=True, returncode=None, detail=f"timed out after {TIMEOUT}s")
    except OSError as error:
        return Probe(ran=False, returncode=None, detail=error.strerror or str(error))
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    detail = "ok" if result.returncode == 0 else (lines[0] if lines else f"exit {result.returncode}")
    return Probe(ran=True, returncode=result.returncode, detail=detail)


def run(dest: str, gid: int, stock: str | None) -> VerifyResult:
    return VerifyResult(
        member=probe(dest, [gid]),
        non_member=probe(dest, []),
        stock=probe(stock, [gid]) if stock else None,
    )
