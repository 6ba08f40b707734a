"""The Ansible collection perfgroup.hpc: where `deploy` finds it, and how its tarball is built.

The repository root is the collection root, and the collection holds the real files: the engine
is plugins/module_utils/perfgroup_engine (perfgroup/engine is a symlink to it, so the CLI runs the
very same files). A bare `ansible-galaxy collection build` in a clean checkout makes a correct
tarball; this module builds from a staging copy of the collection content only, so that a working
checkout's caches and virtualenvs can never end up in it:

    python -m perfgroup.collection build [OUTPUT_DIR]      # from a checkout
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NAMESPACE, NAME = "perfgroup", "hpc"
FQCN = f"{NAMESPACE}.{NAME}"
# What the collection is made of; galaxy.yml's build_ignore drops caches inside these.
CONTENT = ("galaxy.yml", "README.md", "LICENSE", "docs", "meta", "plugins", "playbooks", "roles", "templates", "monitoring")
CHECKOUT = Path(__file__).resolve().parent.parent
INSTALLED = Path(sys.prefix) / "share" / "perfgroup" / "collections"


class CollectionError(Exception):
    pass


def in_checkout() -> bool:
    return (CHECKOUT / "galaxy.yml").is_file() and (CHECKOUT / "plugins").is_dir()


def collections_path(scratch: Path) -> Path:
    """A directory holding ansible_collections/perfgroup/hpc: PERFGROUP_COLLECTIONS, the checkout
    (linked under `scratch`, a private directory of the caller's), or the installed copy."""
    if os.environ.get("PERFGROUP_COLLECTIONS"):
        return Path(os.environ["PERFGROUP_COLLECTIONS"])
    if in_checkout():
        parent = scratch / "ansible_collections" / NAMESPACE
        parent.mkdir(parents=True, exist_ok=True)
        (parent / NAME).symlink_to(CHECKOUT, target_is_directory=True)
        return scratch
    return INSTALLED


def collection_dir(path: Path) -> Path:
    return path / "ansible_collections" / NAMESPACE / NAME


def stage(root: Path, destination: Path) -> Path:
    """Copy the collection content of `root` to `destination`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    destination.mkdir(parents=True)
    for name in CONTENT:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, destination / name, symlinks=False, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


def galaxy_version(root: Path = CHECKOUT) -> str:
    for line in (root / "galaxy.yml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    raise CollectionError(f"{root / 'galaxy.yml'} has no version")


def build(output: Path, root: Path = CHECKOUT, galaxy: str | None = None) -> Path:
    """Build perfgroup-hpc-VERSION.tar.gz into `output`; returns its path."""
    galaxy = galaxy or str(Path(sys.executable).with_name("ansible-galaxy"))
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="perfgroup-collection-") as tmp:
        staged = stage(root, Path(tmp) / "hpc")
        result = subprocess.run([galaxy, "collection", "build", "--force", "--output-path", str(output), str(staged)],
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CollectionError(f"ansible-galaxy collection build failed: {result.stderr.strip() or result.stdout.strip()}")
    tarball = output / f"{NAMESPACE}-{NAME}-{galaxy_version(root)}.tar.gz"
    if not tarball.is_file():
        raise CollectionError(f"ansible-galaxy collection build made no {tarball.name}")
    return tarball


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] != "build" or len(argv) > 2:
        sys.stderr.write("usage: python -m perfgroup.collection build [OUTPUT_DIR]\n")
        return 2
    if not in_checkout():
        sys.stderr.write("perfgroup.collection build: run it from a checkout (galaxy.yml beside perfgroup/)\n")
        return 2
    try:
        tarball = build(Path(argv[1] if len(argv) == 2 else "."))
    except CollectionError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
