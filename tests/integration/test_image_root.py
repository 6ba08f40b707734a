"""`setup --root DIR` / `audit --root DIR` on a real Debian rootfs (the VM lane's bookworm image,
unpacked inside a throwaway node): the group goes into the image's /etc/group with the image's
gid, never the build host's; the image gets the copy with capabilities, the drop-ins, the entry
point, the record and the enabled boot unit; the build host's own files stay exactly as they
were; a second run changes nothing; bad --root values are refused with one line and exit 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import PERFGROUP
from node import Node

sys.path.append(str(Path(__file__).resolve().parents[1] / "vm"))  # after tests/: its conftest stays ours
from images import ensure_image

pytestmark = pytest.mark.integration

IMG = "/srv/img"
GROUP = "perf_users"
COPY = f"/usr/local/libexec/perfgroup/{GROUP}/perf"
IMAGE_FILES = (
    COPY, f"/var/lib/perfgroup/{GROUP}.json", "/usr/local/sbin/perfgroup-node",
    f"/etc/systemd/system/perfgroup-heal-{GROUP}.service", f"/etc/sysctl.d/90-perfgroup-{GROUP}.conf",
    "/etc/systemd/system/sys-kernel-tracing.mount.d/perfgroup.conf", f"/etc/profile.d/perfgroup-{GROUP}.sh",
    f"/etc/profile.d/perfgroup-{GROUP}.csh", "/usr/local/bin/perf", f"/etc/apt/apt.conf.d/80perfgroup-{GROUP}",
    "/etc/environment-modules/modules/perf/privileged",
)
WANTS = f"/etc/systemd/system/multi-user.target.wants/perfgroup-heal-{GROUP}.service"


@pytest.fixture(scope="module")
def bookworm_cpio() -> Path:
    if os.environ.get("PERFGROUP_SKIP_VM"):
        pytest.skip("PERFGROUP_SKIP_VM is set: no VM image to unpack as a node image")
    return ensure_image("bookworm").root_cpio


def unpack(node: Node, cpio: Path) -> None:
    node.ok(f"mkdir -p {IMG} && cd {IMG} && cpio -idm --quiet < {cpio}")


def outside_image(snapshot: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
    return {path: entry for path, entry in snapshot.items() if not path.lstrip("/").startswith(IMG.lstrip("/"))}


def image_gid(node: Node) -> int:
    line = node.ok(f"grep '^{GROUP}:' {IMG}/etc/group")
    return int(line.split(":")[2])


def test_setup_root_prepares_the_image_from_its_own_files_and_leaves_the_build_host_alone(
        make_node: object, bookworm_cpio: Path) -> None:
    node = make_node()  # type: ignore[operator]
    node.ok(f"groupadd -g 4321 {GROUP}")  # the build host's own group of that name: never used for the image
    unpack(node, bookworm_cpio)
    host_before = outside_image(node.snapshot())
    host_group = node.ok("cat /etc/group")

    first = node.run([PERFGROUP, "setup", "--root", IMG, "--group", GROUP, "--member", "alice", "--json"])
    assert first.returncode == 0, first.stdout + first.stderr
    document = json.loads(first.stdout)
    assert document["changed"] is True and document["verify"] is None
    assert any("cpio-packed images" in note and "boot unit" in note for note in document["notes"]), document["notes"]
    kinds = {step["kind"] for step in document["plan"]}
    assert not kinds & {"set_paranoid", "remount_tracefs"}, kinds  # nothing live on the build host

    assert outside_image(node.snapshot()) == host_before, "setup --root changed files outside the image"
    assert node.ok("cat /etc/group") == host_group
    gid = image_gid(node)
    assert gid != 4321
    assert node.ok(f"chroot {IMG} getent group {GROUP}").strip() == f"{GROUP}:x:{gid}:alice"
    for path in IMAGE_FILES:
        assert node.sh(f"test -e {IMG}{path}").returncode == 0, f"{path} missing in the image"
    assert node.ok(f"readlink {IMG}{WANTS}").strip() == f"/etc/systemd/system/perfgroup-heal-{GROUP}.service"
    assert "cap_perfmon" in node.ok(f"getcap {IMG}{COPY}")
    assert node.ok(f"stat -c '%U %g %a' {IMG}{COPY}").split() == ["root", str(gid), "750"]
    record = json.loads(node.ok(f"cat {IMG}/var/lib/perfgroup/{GROUP}.json"))
    assert record["gid"] == gid and record["paranoid_before"] is None
    assert f"gid={gid},mode=0750" in node.ok(f"cat {IMG}/etc/systemd/system/sys-kernel-tracing.mount.d/perfgroup.conf")
    assert node.sh(f"ls -a {IMG} | grep -q perfgroup-stage").returncode != 0, "the staged engine was left behind"

    audit = node.run([PERFGROUP, "audit", "--root", IMG, "--group", GROUP, "--json"])
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    found = {f["id"] for f in report["findings"]}
    assert report["status"] == "ok" and {"caps.ok", "copy.current", "image.live_state"} <= found, report

    whole = node.snapshot()
    again = node.run([PERFGROUP, "setup", "--root", IMG, "--group", GROUP, "--member", "alice", "--json"])
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout + again.stderr
    assert node.snapshot() == whole, "a second setup --root changed something"

    # Drift inside the image is the image's finding, not the build host's.
    node.ok(f"chmod o+x {IMG}{COPY}")
    drifted = node.run([PERFGROUP, "audit", "--root", IMG, "--group", GROUP, "--format", "nagios"])
    assert drifted.returncode == 2 and drifted.stdout.startswith("PERFGROUP CRITICAL"), drifted.stdout


def test_setup_root_gid_option_dry_run_and_the_images_package_manager(make_node: object, bookworm_cpio: Path) -> None:
    node = make_node()  # type: ignore[operator]
    unpack(node, bookworm_cpio)
    # The image's package manager decides the hook, not the build host's (this Debian machine has apt).
    node.ok(f"mv {IMG}/etc/apt {IMG}/etc/apt.off && mkdir -p {IMG}/etc/dnf/plugins/post-transaction-actions.d")
    before = node.snapshot()
    dry = node.run([PERFGROUP, "setup", "--root", IMG, "--group", GROUP, "--gid", "4242", "--dry-run"])
    assert dry.returncode == 0 and "would change" in dry.stdout, dry.stdout + dry.stderr
    assert node.snapshot() == before, "--dry-run changed something"
    done = node.run([PERFGROUP, "setup", "--root", IMG, "--group", GROUP, "--gid", "4242", "--nhc",
                     "--textfile-dir", "/var/lib/prometheus/node-exporter"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert image_gid(node) == 4242
    assert node.sh(f"test -e {IMG}/etc/dnf/plugins/post-transaction-actions.d/perfgroup-{GROUP}.action").returncode == 0
    assert node.sh(f"ls {IMG}/etc/apt.off/apt.conf.d | grep -q perfgroup").returncode != 0
    assert node.sh(f"test -f {IMG}/etc/nhc/scripts/perfgroup.nhc").returncode == 0
    timer = f"/etc/systemd/system/perfgroup-textfile-{GROUP}.timer"
    # The link is absolute, as systemctl enable makes it: it resolves inside the booted image.
    assert node.ok(f"readlink {IMG}/etc/systemd/system/timers.target.wants/perfgroup-textfile-{GROUP}.timer").strip() == timer
    assert "image /srv/img prepared" in done.stdout


def test_remove_root_takes_perfgroup_out_of_the_image_and_only_that(make_node: object, bookworm_cpio: Path) -> None:
    node = make_node()  # type: ignore[operator]
    unpack(node, bookworm_cpio)
    pristine = node.snapshot()
    done = node.run([PERFGROUP, "setup", "--root", IMG, "--group", GROUP, "--member", "alice",
                     "--textfile-dir", "/var/lib/prometheus/node-exporter"])
    assert done.returncode == 0, done.stdout + done.stderr
    prepared = node.snapshot()
    dry = node.run([PERFGROUP, "remove", "--root", IMG, "--group", GROUP, "--dry-run"])
    assert dry.returncode == 0 and "would" in dry.stdout, dry.stdout + dry.stderr
    assert node.snapshot() == prepared, "remove --root --dry-run changed something"

    gone = node.run([PERFGROUP, "remove", "--root", IMG, "--group", GROUP, "--json"])
    assert gone.returncode == 0, gone.stdout + gone.stderr
    document = json.loads(gone.stdout)
    assert document["changed"] is True and document["image"] == IMG
    after = node.snapshot()
    assert outside_image(after) == outside_image(prepared), "remove --root changed files outside the image"
    # What is left different from the unpacked image: the group database's backups and the
    # files groupadd/groupdel rewrote (same content again), perfgroup's empty state directory and
    # its lock file in /run (a tmpfs on the booted node).
    changed = {path for path in set(after) | set(pristine) if after.get(path) != pristine.get(path)}
    left = {path for path in changed if "perfgroup" in path or "perf_users" in path}
    assert left <= {f"{IMG.lstrip('/')}/var/lib/perfgroup", f"{IMG.lstrip('/')}/run/perfgroup.lock"}, sorted(left)
    assert node.sh(f"grep -q '^{GROUP}:' {IMG}/etc/group").returncode != 0, "the group is still in the image"
    assert node.ok(f"cat {IMG}/etc/group") == node.ok(f"cd {IMG} && cpio -i --quiet --to-stdout etc/group < {bookworm_cpio}")

    again = node.run([PERFGROUP, "remove", "--root", IMG, "--group", GROUP])
    assert again.returncode == 0 and "nothing to remove" in again.stdout, again.stdout + again.stderr


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["setup", "--root", "srv/img"], 2, "absolute path"),
    (["setup", "--root", "/srv/nothing"], 2, "no such directory"),
    (["setup", "--root", "/"], 2, "this machine"),
    (["setup", "--root", "/srv/bare"], 2, "not a Linux root"),
    (["setup", "--root", "/srv/nopython"], 2, "python3"),
    (["setup", "--root", "/srv/nopython", "--group", "root"], 2, "already grants system powers"),
    (["audit", "--root", "/srv/nothing"], 3, "no such directory"),
    (["remove", "--root", "/"], 2, "this machine"),
    (["remove", "--root", "/srv/bare"], 2, "not a Linux root"),
    (["audit", "--root", "/srv/nopython", "--functional"], 3, "--functional"),
])
def test_bad_root_is_refused_with_one_line_and_nothing_changes(node: Node, argv: list[str], code: int,
                                                                says: str) -> None:
    node.ok("mkdir -p /srv/bare /srv/nopython/etc")
    before = node.snapshot()
    result = node.run([PERFGROUP, *argv])
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert node.snapshot() == before
