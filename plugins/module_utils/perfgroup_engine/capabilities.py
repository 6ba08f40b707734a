"""Capability names, the VFS `security.capability` encoding, and which set a kernel needs.

Standard library only: this package is shipped to nodes by Ansible as module_utils.
"""

from __future__ import annotations

import struct

from .tuples import NamedTuple

# Numbers from linux/capability.h. Kept complete so a decoded attribute never loses a bit.
CAP_NUMBERS: dict[str, int] = {
    "cap_chown": 0,
    "cap_dac_override": 1,
    "cap_dac_read_search": 2,
    "cap_fowner": 3,
    "cap_fsetid": 4,
    "cap_kill": 5,
    "cap_setgid": 6,
    "cap_setuid": 7,
    "cap_setpcap": 8,
    "cap_linux_immutable": 9,
    "cap_net_bind_service": 10,
    "cap_net_broadcast": 11,
    "cap_net_admin": 12,
    "cap_net_raw": 13,
    "cap_ipc_lock": 14,
    "cap_ipc_owner": 15,
    "cap_sys_module": 16,
    "cap_sys_rawio": 17,
    "cap_sys_chroot": 18,
    "cap_sys_ptrace": 19,
    "cap_sys_pacct": 20,
    "cap_sys_admin": 21,
    "cap_sys_boot": 22,
    "cap_sys_nice": 23,
    "cap_sys_resource": 24,
    "cap_sys_time": 25,
    "cap_sys_tty_config": 26,
    "cap_mknod": 27,
    "cap_lease": 28,
    "cap_audit_write": 29,
    "cap_audit_control": 30,
    "cap_setfcap": 31,
    "cap_mac_override": 32,
    "cap_mac_admin": 33,
    "cap_syslog": 34,
    "cap_wake_alarm": 35,
    "cap_block_suspend": 36,
    "cap_audit_read": 37,
    "cap_perfmon": 38,
    "cap_bpf": 39,
    "cap_checkpoint_restore": 40,
}
CAP_NAMES: dict[int, str] = {number: name for name, number in CAP_NUMBERS.items()}

CAP_PERFMON = CAP_NUMBERS["cap_perfmon"]

# Capabilities that let a member become root or own the machine. perf runs member code inside
# the privileged process (`perf script -s x.py`, Perl too), so a capability on the copy is every
# member's to use as they like: CAP_SYS_ADMIN mounts over /etc/pam.d/su, CAP_SYS_PTRACE writes
# into a root process (both shown), the others are well-known routes to uid 0.
ROOT_EQUIVALENT_CAPS: frozenset[str] = frozenset({
    "cap_sys_admin", "cap_sys_ptrace", "cap_dac_override", "cap_dac_read_search", "cap_setuid",
    "cap_setgid", "cap_setfcap", "cap_setpcap", "cap_sys_module", "cap_sys_rawio", "cap_chown",
    "cap_fowner", "cap_fsetid", "cap_sys_chroot", "cap_mknod", "cap_bpf", "cap_net_admin",
    "cap_sys_boot", "cap_mac_override", "cap_mac_admin", "cap_linux_immutable", "cap_ipc_owner",
    "cap_checkpoint_restore",
})
# What profiling can use. Anything else on the copy is power beyond profiling, handed to every member.
# perf_event_paranoid >= 2 (always, with a perf group) shows kallsyms addresses only to CAP_SYSLOG
# holders (kallsyms_show_value), and CAP_IPC_LOCK lifts the per-user mlock budget that `perf top -a`
# and `perf record -m` exceed; neither leads to root. The set chosen on every CAP_PERFMON kernel.
PROFILING_CAPS: frozenset[str] = frozenset({"cap_perfmon", "cap_syslog", "cap_ipc_lock"})

XATTR_NAME = "security.capability"
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000
VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001


class CapabilityError(ValueError):
    """A capability name or attribute that cannot be understood."""


class FileCaps(NamedTuple):
    """The decoded content of a `security.capability` attribute."""

    permitted: frozenset[str]
    inheritable: frozenset[str]
    effective: bool
    revision: int  # 2 or 3
    rootid: int | None = None  # v3 only: the namespace root uid the caps apply to

    @property
    def namespaced(self) -> bool:
        """True when the caps only apply inside a user namespace, not on the host."""
        return self.revision == 3 and bool(self.rootid)

    def text(self) -> str:
        """The caps in the `getcap` style, e.g. `cap_perfmon,cap_syslog=ep`."""
        if not self.permitted and not self.inheritable:
            return "="
        names = ",".join(sort_caps(self.permitted | self.inheritable))
        flags = ("e" if self.effective else "") + ("p" if self.permitted else "")
        flags += "i" if self.inheritable else ""
        return f"{names}={flags}"


def sort_caps(names: frozenset[str] | set[str]) -> list[str]:
    """Capability names in kernel number order (as getcap prints them)."""
    return sorted(names, key=lambda name: CAP_NUMBERS.get(name, 999))


def parse_cap_name(token: str) -> str:
    """Normalise `CAP_PERFMON`, `perfmon` or `38` to `cap_perfmon`."""
    cleaned = token.strip().lower()
    if not cleaned:
        raise CapabilityError("empty capability name")
    if cleaned.isdigit():
        number = int(cleaned)
        if number not in CAP_NAMES:
            raise CapabilityError(f"unknown capability number {number}")
        return CAP_NAMES[number]
    if not cleaned.startswith("cap_"):
        cleaned = "cap_" + cleaned
    if cleaned not in CAP_NUMBERS:
        raise CapabilityError(f"unknown capability {token.strip()!r}")
    return cleaned


def parse_cap_list(text: str) -> frozenset[str]:
    """Parse `cap_perfmon,cap_syslog` (an optional trailing `=ep` is accepted and ignored)."""
    body = text.strip()
    if "=" in body:
        body, _, flags = body.partition("=")
        if flags.strip() not in ("ep", "pe", "+ep"):
            raise CapabilityError(f"only '=ep' capabilities are supported, not '={flags.strip()}'")
    if body.strip().lower() == "all":
        raise CapabilityError("'all' would grant every capability, which is root in disguise")
    names = [token for token in body.split(",") if token.strip()]
    if not names:
        raise CapabilityError("no capabilities given")
    return frozenset(parse_cap_name(name) for name in names)


def _mask_of(names: frozenset[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name]
    return mask


def _names_of(mask: int) -> frozenset[str]:
    return frozenset(CAP_NAMES.get(bit, f"cap_{bit}") for bit in range(64) if mask >> bit & 1)


def encode(caps: frozenset[str], effective: bool = True) -> bytes:
    """Encode permitted caps (+effective) as a VFS_CAP_REVISION_2 attribute value."""
    permitted = _mask_of(caps)
    magic = VFS_CAP_REVISION_2 | (VFS_CAP_FLAGS_EFFECTIVE if effective else 0)
    return struct.pack("<5I", magic, permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


def decode(data: bytes) -> FileCaps:
    """Decode a v2 or v3 `security.capability` value; raise CapabilityError if malformed."""
    if len(data) < 4:
        raise CapabilityError(f"capability attribute too short ({len(data)} bytes)")
    (magic,) = struct.unpack_from("<I", data)
    revision = magic & VFS_CAP_REVISION_MASK
    if revision == VFS_CAP_REVISION_2 and len(data) == 20:
        rootid = None
    elif revision == VFS_CAP_REVISION_3 and len(data) == 24:
        (rootid,) = struct.unpack_from("<I", data, 20)
    else:
        raise CapabilityError(f"unsupported capability attribute (magic {magic:#010x}, {len(data)} bytes)")
    perm_lo, inh_lo, perm_hi, inh_hi = struct.unpack_from("<4I", data, 4)
    return FileCaps(
        permitted=_names_of(perm_lo | perm_hi << 32),
        inheritable=_names_of(inh_lo | inh_hi << 32),
        effective=bool(magic & VFS_CAP_FLAGS_EFFECTIVE),
        revision=revision >> 24,
        rootid=rootid,
    )


class CapChoice(NamedTuple):
    """The capability set chosen for a kernel, with the reason in words."""

    caps: frozenset[str]
    core: str  # the one capability without which perf cannot profile system-wide
    reason: str

    def text(self) -> str:
        return ",".join(sort_caps(self.caps)) + "=ep"

    @property
    def root_equivalent(self) -> frozenset[str]:
        return self.caps & ROOT_EQUIVALENT_CAPS


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) from a `uname -r` string such as `6.1.0-18-amd64`; (0, 0) if unreadable."""
    # As re.match(r"(\d+)\.(\d+)", release), without re (and enum) on the audit path.
    major, dot, rest = release.partition(".")
    minor = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    if not (dot and major.isascii() and major.isdigit() and minor):
        return (0, 0)
    return (int(major), int(minor))


def has_perfmon(cap_last_cap: int | None, kernel_release: str) -> bool:
    """cap_last_cap is trusted over the version: distribution kernels backport CAP_PERFMON."""
    if cap_last_cap is not None:
        return cap_last_cap >= CAP_PERFMON
    return kernel_version(kernel_release) >= (5, 8)


LEGACY_SET = frozenset({"cap_sys_admin", "cap_sys_ptrace", "cap_syslog"})


def choose_caps(cap_last_cap: int | None, kernel_release: str, allow_root_equivalent: bool = False) -> CapChoice:
    """The least capability set that lets a member profile system-wide on this kernel."""
    version = kernel_version(kernel_release)
    if not has_perfmon(cap_last_cap, kernel_release):
        return CapChoice(
            caps=LEGACY_SET, core="cap_sys_admin",
            reason=(
                f"kernel has no CAP_PERFMON (cap_last_cap={cap_last_cap}): only the documented pre-5.8 set "
                "cap_sys_admin,cap_sys_ptrace,cap_syslog works, and with it members can become root"
            ),
        )
    caps = set(PROFILING_CAPS)
    why = [
        f"CAP_PERFMON exists (cap_last_cap={cap_last_cap})" if cap_last_cap is not None
        else f"CAP_PERFMON exists (kernel {version[0]}.{version[1]} >= 5.8)",
        "cap_syslog: kernel symbols at perf_event_paranoid >= 2",
        "cap_ipc_lock: perf top/record -m beyond the mlock budget",
    ]
    if version == (0, 0):  # an image without /lib/modules: no release to compare
        why.append("kernel release unknown (an image without /lib/modules): assumed 5.9 or later")
    elif version < (5, 9) and allow_root_equivalent:
        caps.add("cap_sys_ptrace")
        why.append(f"kernel {version[0]}.{version[1]} < 5.9: cap_sys_ptrace (root-equivalent, allowed) to watch other users' processes")
    elif version < (5, 9):
        why.append(f"kernel {version[0]}.{version[1]} < 5.9: watching other users' processes by pid would need "
                   "cap_sys_ptrace, which is root-equivalent and not granted")
    return CapChoice(caps=frozenset(caps), core="cap_perfmon", reason="; ".join(why))


def choice_from_override(caps: frozenset[str]) -> CapChoice:
    """A CapChoice for an administrator's explicit `--caps` list."""
    core = "cap_perfmon" if "cap_perfmon" in caps else "cap_sys_admin" if "cap_sys_admin" in caps else ""
    return CapChoice(caps=caps, core=core, reason="set explicitly by the administrator (--caps)")


ROOT_EQUIVALENT_FLAG = "--allow-root-equivalent"


def ungranted_root_equivalent(caps: frozenset[str], granted: frozenset[str]) -> list[str]:
    """The root-equivalent capabilities among caps that the opt-in did not grant, sorted."""
    return sort_caps((caps & ROOT_EQUIVALENT_CAPS) - granted)


def root_equivalent_refusal(why: str, dangerous: list[str], then: str = "") -> str:
    """The one refusal of root-equivalent capabilities without the opt-in (an explicit --caps, a
    kernel without CAP_PERFMON, a remembered list): members run their own code inside perf
    (perf script), so each capability on the copy is theirs."""
    return (f"{why}: {','.join(dangerous)} would let every member become root (perf script runs their code with "
            f"the copy's capabilities); refusing. {then}{ROOT_EQUIVALENT_FLAG} grants it anyway and hands root "
            "to the group")
