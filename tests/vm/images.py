"""Build and cache VM images: a Debian cloud kernel plus a debootstrap rootfs packed as one cpio.

An image is keyed by its recipe (suite, package list, RECIPE_VERSION, the build script text), so
changing any of them builds a new one and an unchanged recipe is never rebuilt. Builds happen in a
temporary directory next to the cache and are renamed into place only when complete: a killed
build leaves a `.tmp-*` directory that the next build removes, never a half image.

The image carries no project code; the perfgroup wheel and the scenario travel in a second, small
cpio appended per boot (see qemu.py). What it does carry, built once:
- `vmlinuz` of `linux-image-<ver>-cloud-amd64` from the suite's own archive, and in the rootfs
  only the modules a virtio state disk needs (the cloud kernel builds virtio_blk as a module) and
  the kernel's `/boot/config-<release>`, as the package installs it;
- users `alice` and `bob` (no groups beyond their own);
- `/opt/perfgroup`, a venv made with the guest's python3 holding click (so per boot only the
  perfgroup wheel is installed, offline).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("PERFGROUP_VM_CACHE", "/var/cache/perfgroup-vm"))
MIRROR = "http://deb.debian.org/debian"
RECIPE_VERSION = 2  # 2: /boot/config-$kver in the rootfs

_COMMON = ["python3", "python3-venv", "libcap2-bin", "passwd", "procps", "util-linux", "acl",
           "systemd-sysv", "kmod", "e2fsprogs"]
# bullseye's perf is versioned (perf_5.10); linux-base carries the /usr/bin/perf wrapper there.
PACKAGES = {
    # tcsh and environment-modules: members' perf in csh and through `module load` (issue 11).
    "bookworm": [*_COMMON, "linux-perf", "tcsh", "environment-modules"],
    "bullseye": [*_COMMON, "linux-perf-5.10", "linux-base"],
    "trixie": [*_COMMON, "linux-perf"],
}
# Variants: an image of its own (own recipe key, own cache entry) debootstrapped from a suite.
# bookworm-slurm: Slurm 22.05 for per-job access with proctrack/cgroup and --job-paranoid (issue 18).
# dbus: 22.05's cgroup/v2 asks systemd over D-Bus for slurmstepd.scope, or slurmd does not start.
# iproute2: the guest has only lo, and Slurm resolves even "127.0.0.1" with AI_ADDRCONFIG, which
# answers nothing until some IPv4 address other than 127.0.0.1 exists (the test adds one to lo).
PACKAGES["bookworm-slurm"] = [*PACKAGES["bookworm"], "slurmctld", "slurmd", "slurm-client", "munge", "dbus", "iproute2"]
DEBOOTSTRAP_SUITE = {"bookworm-slurm": "bookworm"}

# Modules (with their dependencies, resolved by the script) a virtio state disk needs.
DISK_MODULES = "virtio_pci virtio_blk ext4"

BUILD_SCRIPT = r"""
set -euo pipefail
suite=$1 out=$2 pkgs=$3 mirror=$4 wheels=$5 modules=$6
root=$out/rootfs
debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" >"$out/debootstrap.log" 2>&1 \
    || { tail -n 30 "$out/debootstrap.log" >&2; exit 1; }
# The kernel comes from the suite's own index, fetched by the chroot's apt (the host knows only bookworm).
chroot "$root" apt-get update -qq
kpkg=$(chroot "$root" apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
test -n "$kpkg"
chroot "$root" sh -c "cd /tmp && apt-get download -qq $kpkg"
dpkg-deb -x "$root"/tmp/"$kpkg"_*.deb "$out/kernel"
rm -f "$root"/tmp/*.deb
# trixie's kernel deb ships its modules under usr/lib (merged /usr), older ones under lib.
for d in usr/lib/modules lib/modules; do
    if [ -d "$out/kernel/$d" ]; then kmods=$out/kernel/$d; break; fi
done
kver=$(ls "$kmods")
cp "$out"/kernel/boot/vmlinuz-"$kver" "$out/vmlinuz"
# The kernel's config, where linux-image puts it on every Debian node: perfgroup reads it to know
# whether paranoid 3 blocks CAP_PERFMON (CONFIG_SECURITY_PERF_EVENTS_RESTRICT).
mkdir -p "$root/boot"
cp "$out"/kernel/boot/config-"$kver" "$root/boot/"
# Only the disk modules and what they depend on; modules.dep is made by depmod, not shipped in the deb.
mdir=lib/modules/$kver
mkdir -p "$root/lib/modules"
cp -a "$kmods/$kver" "$root/lib/modules/"
chroot "$root" depmod "$kver"
keep=$(for m in $modules; do chroot "$root" modprobe -S "$kver" --show-depends "$m"; done | awk '$1 == "insmod" {print $2}')
mkdir "$out/keep"
for f in $keep; do mkdir -p "$out/keep$(dirname "$f")"; cp "$root$f" "$out/keep$f"; done
rm -rf "$root/$mdir/kernel"
for f in $keep; do mkdir -p "$root$(dirname "$f")"; cp "$out/keep$f" "$root$f"; done
rm -rf "$out/keep"
chroot "$root" depmod "$kver"
rm -rf "$out/kernel"
for u in alice bob; do chroot "$root" useradd --create-home --shell /bin/bash "$u"; done
mkdir -p "$root/tmp/wheels" && cp "$wheels"/*.whl "$root/tmp/wheels/"
chroot "$root" python3 -m venv /opt/perfgroup
chroot "$root" /opt/perfgroup/bin/pip install -q --no-index --find-links /tmp/wheels click
rm -rf "$root/tmp/wheels" "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
chroot "$root" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' >"$out/python"
echo "$kpkg" >"$out/kernel-package"
echo "$kver" >"$out/kernel-release"
(cd "$root" && find . -xdev | cpio --quiet -o -H newc) >"$out/root.cpio"
rm -rf "$root"
"""


@dataclass(frozen=True)
class Image:
    suite: str
    directory: Path
    vmlinuz: Path
    root_cpio: Path
    kernel_release: str
    kernel_package: str
    python: str
    build_seconds: float | None


def recipe(suite: str) -> dict[str, object]:
    return {"suite": suite, "packages": PACKAGES[suite], "recipe_version": RECIPE_VERSION,
            "mirror": MIRROR, "modules": DISK_MODULES, "script": BUILD_SCRIPT}


def image_dir(suite: str) -> Path:
    digest = hashlib.sha256(json.dumps(recipe(suite), sort_keys=True).encode()).hexdigest()[:16]
    return CACHE / f"{suite}-{digest}"


def ensure_image(suite: str) -> Image:
    """The cached image for `suite`, building it first if it is missing."""
    final = image_dir(suite)
    if not (final / "meta.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with _lock(final.name):
            if not (final / "meta.json").exists():
                _build(suite, final)
    return _load(suite, final)


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    # Two pytest runs (or CI's pre-build and a test session) must not build the same image twice.
    with open(CACHE / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(suite: str, final: Path) -> None:
    _remove_stale_builds(final.name)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=CACHE))
    started = time.monotonic()
    try:
        wheels = work / "wheels"
        _click_wheel(suite, wheels)
        subprocess.run(["bash", "-c", BUILD_SCRIPT, "build", DEBOOTSTRAP_SUITE.get(suite, suite), str(work), ",".join(PACKAGES[suite]), MIRROR,
                        str(wheels), DISK_MODULES], check=True)
        shutil.rmtree(wheels)
        meta = {"suite": suite, "build_seconds": round(time.monotonic() - started, 1),
                **{name: (work / name).read_text().strip() for name in ("python", "kernel-package", "kernel-release")}}
        (work / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.rename(work, final)
    except BaseException:
        with contextlib.suppress(OSError, RuntimeError):  # the build's own error matters more
            _remove_tree(work)
        raise
    _prune(suite, final)


def _remove_stale_builds(own_key: str) -> None:
    """Delete half-built images whose build is gone (its lock is free, or is ours)."""
    with _lock("cleanup"):  # concurrent builds would race to delete the same directory
        for stale in CACHE.glob(".tmp-*"):
            _remove_if_stale(stale, own_key)


def _remove_if_stale(stale: Path, own_key: str) -> None:
    key = stale.name[len(".tmp-"):].rsplit("-", 1)[0]
    if key == own_key:  # we hold its lock: nobody else is building it
        _remove_tree(stale)
        return
    with open(CACHE / f".{key}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a build of that recipe is running right now
        _remove_tree(stale)


def _remove_tree(path: Path) -> None:
    # A killed debootstrap can leave /proc or /sys mounted in its chroot; rmtree would walk into them.
    inside = str(path) + "/"
    with open("/proc/self/mounts") as mounts:
        if any(line.split()[1].startswith(inside) for line in mounts):
            raise RuntimeError(f"{path} still has mounts below it; unmount them, then delete it")
    shutil.rmtree(path)


def _prune(suite: str, keep: Path) -> None:
    # An image of an older recipe is never used again; each one is ~250 MB.
    for old in CACHE.glob(f"{suite}-*"):
        # bookworm-<key> only: bookworm-slurm-<key> is another image, not an older recipe.
        key = old.name[len(suite) + 1:]
        if old != keep and len(key) == 16 and "-" not in key and (old / "meta.json").exists():
            _remove_tree(old)


# The guest's python3 decides which click can install (click 8.2 needs Python 3.10; bullseye has 3.9).
_GUEST_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13", "bookworm-slurm": "3.11"}


def _click_wheel(suite: str, dest: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", "--python-version", _GUEST_PYTHON[suite], "-d", str(dest), "click"],
                   check=True)


def _load(suite: str, directory: Path) -> Image:
    meta = json.loads((directory / "meta.json").read_text())
    return Image(suite=suite, directory=directory, vmlinuz=directory / "vmlinuz", root_cpio=directory / "root.cpio",
                 kernel_release=meta["kernel-release"], kernel_package=meta["kernel-package"],
                 python=meta["python"], build_seconds=meta.get("build_seconds"))


def main(suites: list[str]) -> None:
    """Build (or find) images concurrently: debootstrap waits on the network more than on the CPU."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(suites)) as pool:
        for img in pool.map(ensure_image, suites):
            print(f"{img.suite}: {img.directory.name} kernel {img.kernel_release} python {img.python} "
                  f"(build took {img.build_seconds}s)")
    print(f"images ready in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main(sys.argv[1:] or ["bookworm", "bullseye"])
