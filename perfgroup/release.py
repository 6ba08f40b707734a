"""A release a site installs without a checkout (docs/release.md):

    python -m perfgroup.release [OUTPUT_DIR]      # from a git checkout; OUTPUT_DIR defaults to dist/

builds, from the files git tracks (a staging copy: caches, virtualenvs and untracked files of the
working tree cannot end up in a release), into OUTPUT_DIR:

    perfgroup-VERSION.tar.gz              the sdist
    perfgroup-VERSION-py3-none-any.whl    the wheel, built from that sdist (so the sdist is complete)
    perfgroup-hpc-VERSION.tar.gz          the Ansible collection perfgroup.hpc
    SHA256SUMS                            `sha256sum -c SHA256SUMS` checks the three

Offline: the build backend (pyproject.toml's build-system, setuptools) is the running
interpreter's, never downloaded; constraints/main.txt pins it for the project's .venv.
Exit codes: 0 built, 1 a build step failed, 2 refused (not a git checkout, two versions, placeholder
metadata); each failure is one line on stderr.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import collection

CHECKOUT = collection.CHECKOUT
# The files whose metadata a site sees (pip show, ansible-galaxy, role meta): no placeholder in them.
METADATA = ("pyproject.toml", "galaxy.yml", "meta", "roles/perf_users/meta")
PLACEHOLDER = "example.invalid"
# PEP 517's two hooks, run in the staged tree by the interpreter running this module.
SDIST_HOOK = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"


class ReleaseError(Exception):
    """A build step failed (exit 1)."""


class RefusedError(ReleaseError):
    """The tree cannot make an honest release (exit 2)."""


def tracked_copy(root: Path, destination: Path) -> Path:
    """The files git tracks in `root`, as they are in its working tree (symlinks kept as links)."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=False)
    if listed.returncode != 0:
        raise RefusedError(f"{root} is not a git checkout: a release is built from the files git tracks")
    for name in listed.stdout.decode().split("\0"):
        if not name:
            continue
        source, target = root / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    return destination


def placeholders(root: Path) -> list[str]:
    """Metadata files naming the placeholder domain, relative to `root`."""
    found = []
    for name in METADATA:
        path = root / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and PLACEHOLDER in file.read_text(errors="replace"):
                found.append(str(file.relative_to(root)))
    return found


def engine_version(root: Path) -> str:
    """VERSION from the staged engine's __init__.py, read, not imported (the running package may
    be another tree)."""
    for line in (root / "perfgroup" / "engine" / "__init__.py").read_text().splitlines():
        if line.startswith("VERSION = "):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise RefusedError(f"{root}/perfgroup/engine/__init__.py sets no VERSION")


def check(root: Path) -> str:
    """The one version of the tree at `root`; refuses placeholders and a second version."""
    found = placeholders(root)
    if found:
        raise RefusedError(f"{PLACEHOLDER} in {', '.join(found)}: give the real value or leave the field out")
    version, galaxy = engine_version(root), collection.galaxy_version(root)
    if version != galaxy:
        raise RefusedError(f"perfgroup/engine/__init__.py says version {version}, galaxy.yml {galaxy}: make them one")
    return version


def _run(step: str, argv: list[str], cwd: Path) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        raise ReleaseError(f"{step} failed (exit {result.returncode}): {lines[-1]}")
    return result.stdout


def build(output: Path, root: Path = CHECKOUT) -> list[Path]:
    """The sdist, the wheel, the collection tarball and SHA256SUMS in `output`; returns their paths."""
    if output.exists() and not output.is_dir():
        raise RefusedError(f"{output} is not a directory")
    with tempfile.TemporaryDirectory(prefix="perfgroup-release-") as tmp:
        staged = tracked_copy(root, Path(tmp) / "src")
        version = check(staged)
        built = Path(tmp) / "dist"
        built.mkdir()
        sdist = built / _run("building the sdist", [sys.executable, "-c", SDIST_HOOK, str(built)],
                             staged).strip().splitlines()[-1]
        # From the sdist, not the tree: a file the sdist misses fails here, not at a site.
        _run("building the wheel from the sdist",
             [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
              "--check-build-dependencies", "--no-index", "-w", str(built), str(sdist)], staged)
        try:
            tarball = collection.build(built, root=staged)
        except collection.CollectionError as error:
            raise ReleaseError(str(error)) from None
        names = [sdist.name, f"perfgroup-{version}-py3-none-any.whl", tarball.name]
        missing = [name for name in names if not (built / name).is_file()]
        if missing:
            raise ReleaseError(f"the build made no {', '.join(missing)}")
        output.mkdir(parents=True, exist_ok=True)
        sums = "".join(f"{hashlib.sha256((built / name).read_bytes()).hexdigest()}  {name}\n" for name in names)
        (built / "SHA256SUMS").write_text(sums)
        paths = []
        for name in [*names, "SHA256SUMS"]:
            shutil.move(str(built / name), str(output / name))
            paths.append(output / name)
    return paths


def main(argv: list[str]) -> int:
    if len(argv) > 1 or argv[:1] in (["-h"], ["--help"]):
        sys.stderr.write("usage: python -m perfgroup.release [OUTPUT_DIR]  (from a git checkout; default dist/)\n")
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    if not collection.in_checkout():
        sys.stderr.write("perfgroup.release: run it from a checkout (galaxy.yml beside perfgroup/)\n")
        return 2
    output = Path(argv[0]) if argv else CHECKOUT / "dist"
    try:
        paths = build(output.resolve())
    except RefusedError as error:
        sys.stderr.write(f"perfgroup.release: {error}\n")
        return 2
    except (ReleaseError, OSError) as error:
        sys.stderr.write(f"perfgroup.release: {error}\n")
        return 1
    print(f"built from {CHECKOUT}:")
    for path in paths:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
