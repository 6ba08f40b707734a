"""Throwaway test nodes: a mount namespace whose root is an overlayfs over `/`.

Everything a test does inside a node (groups, users, /etc, file capabilities, sysctl drop-ins)
lands in the overlay's upper layer, a temporary directory, and vanishes with the node. The host is
never written: /proc/sys is mounted read-only inside the node, and a node that needs another
kernel value (cap_last_cap, perf_event_paranoid) gets a regular file bind-mounted over that entry.
Processes are stopped by the PID the node started, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the upper layer
    "NO_COLOR": "1",
    "HOME": "/root",
}


@dataclass
class NodeOptions:
    sysctls: dict[str, str] = field(default_factory=dict)  # e.g. {"kernel/cap_last_cap": "37"}
    nosuid_dirs: tuple[str, ...] = ()  # directories inside the node to bind-mount nosuid
    without_perf: bool = False  # delete the distribution perf inside the node
    extra_setup: str = ""  # shell run in the namespace before the node starts, $R = node root
    own_dev: bool = False  # a private /dev (tmpfs + the few device nodes needed), e.g. for /dev/log


class Node:
    def __init__(self, options: NodeOptions | None = None, base: str | None = None) -> None:
        self.options = options or NodeOptions()
        self.dir = Path(tempfile.mkdtemp(prefix="perfgroup-node-", dir=base))
        self.upper, self.work, self.root = self.dir / "upper", self.dir / "work", self.dir / "root"
        self.fake = self.dir / "fake"
        for path in (self.upper, self.work, self.root, self.fake):
            path.mkdir()
        self.pid = self._start()

    def _script(self) -> str:
        r = shlex.quote(str(self.root))
        lines = [
            "set -e",
            f"mount -t overlay overlay -o lowerdir=/,upperdir={shlex.quote(str(self.upper))},"
            f"workdir={shlex.quote(str(self.work))} {r}",
            f"mount --rbind /proc {r}/proc",
            f"mount --rbind /sys {r}/sys",
            # tracefs has one superblock per kernel: a remount inside the node would change the
            # host's. Private empty tmpfs over both places perf looks, so setup sees no tracefs.
            *(f"if [ -d {r}{d} ]; then mount -t tmpfs -o mode=0700 perfgroup-no-tracefs {r}{d}; fi"
              for d in ("/sys/kernel/tracing", "/sys/kernel/debug")),
            *(self._own_dev(r) if self.options.own_dev else [f"mount --rbind /dev {r}/dev"]),
            f"mount --bind {r}/proc/sys {r}/proc/sys",
            f"mount -o remount,bind,ro {r}/proc/sys",
        ]
        for entry, value in self.options.sysctls.items():
            fake = self.fake / entry.replace("/", "_")
            fake.write_text(value + "\n")
            lines.append(f"mount --bind {shlex.quote(str(fake))} {r}/proc/sys/{entry}")
        for directory in self.options.nosuid_dirs:
            d = shlex.quote(f"{self.root}{directory}")
            lines += [f"mkdir -p {d}", f"mount --bind {d} {d}", f"mount -o remount,bind,nosuid {d}"]
        if self.options.without_perf:
            lines.append(f"rm -f {r}/usr/bin/perf")
        if self.options.extra_setup:
            lines.append(f"R={r}; {self.options.extra_setup}")
        lines += ["echo ready", "exec sleep infinity"]
        return "\n".join(lines)

    @staticmethod
    def _own_dev(r: str) -> list[str]:
        lines = [f"mount -t tmpfs -o mode=755,nosuid tmpfs {r}/dev"]
        for device in ("null", "zero", "full", "random", "urandom", "tty"):
            lines += [f"touch {r}/dev/{device}", f"mount --bind /dev/{device} {r}/dev/{device}"]
        lines += [f"mkdir {r}/dev/pts {r}/dev/shm", f"mount --bind /dev/pts {r}/dev/pts",
                  f"mount -t tmpfs tmpfs {r}/dev/shm", f"ln -s /proc/self/fd {r}/dev/fd"]
        return lines

    def _start(self) -> int:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", self._script()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"node failed to start: {err.strip()}")
        self._proc = proc
        return proc.pid

    def argv(self, argv: list[str], user: str | None = None) -> list[str]:
        prefix = ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--", "chroot", str(self.root)]
        if user is not None:
            # setpriv keeps root's effective capabilities until the exec it performs, so exec'ing
            # the target directly would pass the permission check with CAP_DAC_OVERRIDE; a shell
            # in between execs it as a plain user, as a login would.
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--",
                       "/bin/sh", "-c", 'exec "$0" "$@"']
        return prefix + argv

    def run(self, argv: list[str], user: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(argv, user), env={**ENV, **(env or {})}, capture_output=True, text=True,
            timeout=timeout, input=input, check=False,
        )

    def sh(self, script: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-c", script], user=user)

    def ok(self, script: str) -> str:
        result = self.sh(script)
        assert result.returncode == 0, f"{script!r} failed: {result.stderr}"
        return result.stdout

    def path(self, inside: str) -> Path:
        """Where a node path is visible from the host (reading only)."""
        return Path(f"/proc/{self.pid}/root{self.root}{inside}")

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        """Every entry of the upper layer: type, mode, owner, content hash, xattrs."""
        entries: dict[str, tuple[object, ...]] = {}
        for dirpath, dirnames, filenames in os.walk(self.upper):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                info = os.lstat(full)
                digest = ""
                if stat.S_ISREG(info.st_mode):
                    digest = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                elif stat.S_ISLNK(info.st_mode):
                    digest = os.readlink(full)
                xattrs = tuple(sorted(
                    (key, os.getxattr(full, key, follow_symlinks=False))
                    for key in os.listxattr(full, follow_symlinks=False)
                ))
                rel = os.path.relpath(full, self.upper)
                entries[rel] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid,
                                info.st_gid, info.st_mtime_ns if not stat.S_ISDIR(info.st_mode) else 0,
                                digest, xattrs)
        return entries

    def processes(self) -> list[int]:
        """PIDs of every process living inside this node (started by this test, e.g. sshd and
        its sessions): their root directory is the node's root."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.pid:
                try:
                    if os.readlink(f"/proc/{entry}/root") == str(self.root):
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def close(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._proc.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)
        self._proc.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyslogReceiver:
    """A real syslog receiver for a node: an AF_UNIX datagram socket bound at the node's own /dev/log
    (what Python's syslog module, through glibc, sends to) from this process, through the node's
    root, and a thread that collects every datagram as text ("<85>Mon DD HH:MM:SS perfgroup[PID]: ...").
    Only for a node with its own /dev (NodeOptions(own_dev=True)): any other node's /dev is the
    host's, where nothing may be created. Closing it removes the socket again."""

    def __init__(self, node: Node) -> None:
        self.path = node.path("/dev/log")
        if not node.options.own_dev or os.stat(self.path.parent).st_dev == os.stat("/dev").st_dev:
            raise ValueError("SyslogReceiver needs a node with its own /dev (NodeOptions(own_dev=True))")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # as a syslog daemon's /dev/log
        self._sock.settimeout(0.1)
        self._received: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            with self._lock:
                self._received.append(data.decode(errors="replace").rstrip("\0\n"))

    def lines(self, sync: bool = True) -> list[str]:
        """Every datagram so far; with `sync`, after one of its own sent now has arrived, so every
        line sent before this call is in (one socket, one queue: datagrams arrive in order)."""
        if sync:
            marker = f"perfgroup-test-sync {uuid.uuid4()}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                sender.sendto(marker.encode(), str(self.path))
            self.wait_for(lambda lines: marker in lines, f"its own marker {marker}")
        with self._lock:
            return [line for line in self._received if not line.startswith("perfgroup-test-sync ")]

    def wait_for(self, check: Callable[[list[str]], bool], what: str, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if check(list(self._received)):
                    return
            time.sleep(0.02)
        raise AssertionError(f"syslog: waited {seconds}s for {what}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> SyslogReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
