"""Boot a cached image under qemu (TCG) with a scenario and bring its results back.

A boot = the image's root.cpio + a small per-boot cpio (init glue, wheels, the scenario). The
scenario is POSIX sh run as root in the guest (`sh -eu` by default) with these helpers sourced
(guest.LIB):

    step NAME CMD [ARG]...      run CMD; keep its stdout, stderr, exit code as step NAME
    step_sh NAME 'shell text'   the same for a shell snippet (run by sh -c)
    as_user USER 'shell text'   run the snippet as USER with USER's groups (setpriv + sh)
    step_as NAME USER 'text'    step NAME as_user USER 'text'

A step never ends the scenario; a failing bare command does (with -e), and BootResult.rc says so.
Results travel over a second serial port that nothing else writes to; the console (ttyS0) is
kept only for diagnostics.

Modes: "systemd" boots /lib/systemd/systemd as PID 1 (it mounts tracefs 0700 root, applies
/etc/sysctl.d, like a real node) and runs the scenario as a unit after multi-user.target;
"init" runs it straight from a minimal init (faster; tracefs mounted with default options).

Reboots: pass the same `state_disk()` to several boots. The guest mounts it (virtio, ext4) and
bind-mounts its copies of STATE_DIRS over the image's; the first boot seeds them from the image.
Files, owners, modes and xattrs (file capabilities included) written there by one boot are seen
by the next, like a stateful node's disk; everything else comes fresh from the image every boot.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import guest
from images import Image

QEMU = "qemu-system-x86_64"
STATE_DIRS = ("etc", "usr/local", "var/lib")
DEFAULT_TIMEOUT = 420.0
TIMINGS: list[str] = []  # one line per boot of this session; the lane's cost is a budget
SYSTEMD_ARGS = ("systemd.show_status=false systemd.wants=perfgroup-vm.service "
                "systemd.mask=serial-getty@ttyS0.service systemd.mask=getty@tty1.service")


@dataclass
class Step:
    name: str
    rc: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"step {self.name}: rc={self.rc}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


@dataclass
class BootResult:
    rc: int
    stdout: str
    stderr: str
    install_rc: int
    install_log: str
    steps: dict[str, Step]
    console: str
    seconds: float  # qemu start to exit, on the host
    boot_seconds: float  # guest uptime when the runner started (kernel + init or systemd)
    install_seconds: float  # pip installing the perfgroup wheel
    scenario_seconds: float
    extra: dict[str, str] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        if name not in self.steps:
            raise AssertionError(f"no step {name!r} ran; scenario rc={self.rc}\n{self.stderr}\n"
                                 f"console tail:\n{self.console[-3000:]}")
        return self.steps[name]


class BootError(RuntimeError):
    """The guest did not hand back results (timeout, panic, broken glue); carries the console."""


@dataclass
class Machine:
    """One suite's image plus this run's wheels: what a test boots."""

    image: Image
    wheels: Path

    def boot(self, script: str, **options: object) -> BootResult:
        return boot(self.image, script, self.wheels, **options)  # type: ignore[arg-type]


def state_disk(path: Path, size_mb: int = 512) -> Path:
    """A fresh ext4 disk image for boots that must see each other's changes."""
    with open(path, "wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True)
    return path


def build_wheels(checkout: Path, dest: Path) -> Path:
    """The perfgroup wheel from the checkout, and jinja2 with MarkupSafe for every guest Python
    (setup renders the node artifacts with jinja2; click is already in the image)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "-w", str(dest), str(checkout)], check=True, capture_output=True)
    for python in GUEST_PYTHONS:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "--python-version", python, "-d", str(dest), "jinja2", "markupsafe"],
                       check=True, capture_output=True)
    return dest


GUEST_PYTHONS = ("3.9", "3.11", "3.13")  # bullseye, bookworm, trixie


def boot(image: Image, script: str, wheels: Path, *, mode: str = "systemd", state: Path | None = None,
         timeout: float = DEFAULT_TIMEOUT, append: str = "", shell_flags: str = "-eu") -> BootResult:
    if mode not in ("systemd", "init"):
        raise ValueError(mode)
    nonce = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="perfgroup-vm-") as tmp:
        work = Path(tmp)
        initrd = _initrd(image, work, script, wheels, nonce, shell_flags)
        pristine = work / "state-before.img"
        if state is not None:
            subprocess.run(["cp", "--sparse=always", str(state), str(pristine)], check=True)
        started = time.monotonic()
        try:
            console = _run_qemu(image, initrd, work, _cmdline(mode, state, append), state, timeout)
        except BootError as error:
            # A guest kernel soft lockup under perf sampling is a hazard of TCG emulation, not of
            # what the scenario tests: boot once more from the same start (state disk restored).
            if "soft lockup" not in str(error):
                raise
            TIMINGS.append(f"{image.suite} {mode}: soft lockup in the guest after {time.monotonic() - started:.0f}s; "
                           "booting again")
            if state is not None:
                subprocess.run(["cp", "--sparse=always", str(pristine), str(state)], check=True)
            started = time.monotonic()
            console = _run_qemu(image, initrd, work, _cmdline(mode, state, append), state, timeout)
        seconds = time.monotonic() - started
        raw = (work / "results.log").read_bytes()
    result = _parse(raw, nonce, console, seconds)
    TIMINGS.append(f"{image.suite} {mode}: {seconds:.1f}s (boot {result.boot_seconds:.1f}, "
                   f"install {result.install_seconds:.1f}, scenario {result.scenario_seconds:.1f})")
    return result


def _cmdline(mode: str, state: Path | None, append: str) -> str:
    parts = ["console=ttyS0", "quiet", "loglevel=3", "panic=-1", "random.trust_cpu=on", "rdinit=/vm/init",
             f"vm.mode={mode}", f"vm.state={1 if state else 0}"]
    if mode == "systemd":
        parts.append(SYSTEMD_ARGS)
    if append:
        parts.append(append)
    return " ".join(parts)


def _initrd(image: Image, work: Path, script: str, wheels: Path, nonce: str, shell_flags: str) -> Path:
    stage = work / "stage"
    files = {
        "vm/init": (guest.INIT, 0o755), "vm/runner": (guest.RUNNER, 0o755), "vm/install": (guest.INSTALL, 0o755),
        "vm/state-mount": (guest.STATE_MOUNT, 0o755), "vm/lib.sh": (guest.LIB, 0o644),
        "vm/scenario.sh": (script, 0o644), "vm/nonce": (nonce + "\n", 0o644),
        "vm/shell-flags": (shell_flags + "\n", 0o644), "vm/state-dirs": ("\n".join(STATE_DIRS) + "\n", 0o644),
        "usr/lib/systemd/system/perfgroup-vm.service": (guest.UNIT, 0o644),
    }
    for rel, (text, mode) in files.items():
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    (stage / "vm/wheels").mkdir()
    # Debian packages beside the wheels go along too (a scenario `dpkg -i`s them): one boot gets a
    # package without changing the image's recipe, which every lane's cache key shares.
    for wheel in [*wheels.glob("*.whl"), *wheels.glob("*.deb")]:
        shutil.copy(wheel, stage / "vm/wheels" / wheel.name)
    # Only vm/ gets directory entries: an entry for usr/ would reset the image's own usr/.
    names = ["vm", *sorted(str(p.relative_to(stage)) for p in (stage / "vm").rglob("*")),
             "usr/lib/systemd/system/perfgroup-vm.service"]
    overlay = work / "overlay.cpio"
    with open(overlay, "wb") as out:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], input="\n".join(names).encode(),
                       stdout=out, cwd=stage, check=True)
    combined = work / "combined.cpio"
    with open(combined, "wb") as out:
        for part in (image.root_cpio, overlay):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return combined


def _run_qemu(image: Image, initrd: Path, work: Path, cmdline: str, state: Path | None, timeout: float) -> str:
    console_log, results_log = work / "console.log", work / "results.log"
    argv = [QEMU, "-accel", "tcg", "-cpu", "max", "-m", "3072", "-smp", "2", "-nodefaults", "-display", "none",
            "-no-reboot", "-kernel", str(image.vmlinuz), "-initrd", str(initrd), "-append", cmdline,
            "-serial", f"file:{console_log}", "-serial", f"file:{results_log}"]
    if state is not None:
        argv += ["-drive", f"file={state},format=raw,if=virtio"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        qemu_out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # only the qemu this call started, by its PID
        proc.wait()
        raise BootError(f"boot timed out after {timeout:.0f}s\n{_tail(console_log)}") from None
    if proc.returncode != 0:
        raise BootError(f"qemu exited {proc.returncode}: {qemu_out.decode(errors='replace')}\n{_tail(console_log)}")
    return console_log.read_text(errors="replace").replace("\r", "")


def _tail(path: Path, size: int = 4000) -> str:
    if not path.exists():
        return "(no console output)"
    return "console tail:\n" + path.read_text(errors="replace").replace("\r", "")[-size:]


def _parse(raw: bytes, nonce: str, console: str, seconds: float) -> BootResult:
    text = raw.decode("ascii", errors="replace").replace("\r", "")
    found = re.search(rf"PERFGROUP-VM-BEGIN {nonce}\n(.*?)PERFGROUP-VM-END {nonce} ([0-9a-f]{{64}})", text, re.S)
    if not found:
        raise BootError(f"no results from the guest\n{console[-4000:]}")
    blob = base64.b64decode("".join(found.group(1).split()))
    if hashlib.sha256(blob).hexdigest() != found.group(2):
        raise BootError("results damaged in transit (sha256 mismatch)")
    files = _untar(blob)
    start, installed, end = (float(v) for v in files.pop("uptime").split())
    return BootResult(rc=int(files.pop("rc")), stdout=files.pop("stdout"), stderr=files.pop("stderr"),
                      install_rc=int(files.pop("install.rc")), install_log=files.pop("install.log"),
                      steps=_steps(files), console=console, seconds=seconds, boot_seconds=start,
                      install_seconds=installed - start, scenario_seconds=end - installed,
                      extra={k: v for k, v in files.items() if not k.startswith("steps/")})


def _untar(blob: bytes) -> dict[str, str]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                files[os.path.normpath(member.name)] = handle.read().decode(errors="replace")
    return files


def _steps(files: dict[str, str]) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    for number in sorted({k.split("/")[1] for k in files if k.startswith("steps/")}):
        base = f"steps/{number}/"
        name = files[base + "name"]
        if name in steps:
            raise BootError(f"step name {name!r} used twice")
        steps[name] = Step(name=name, rc=int(files.get(base + "rc", "-1")), stdout=files.get(base + "stdout", ""),
                           stderr=files.get(base + "stderr", ""))
    return steps
