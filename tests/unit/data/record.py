"""Re-record the callback JSON fixtures (run as root from the checkout: .venv/bin/python tests/unit/data/record.py).

Real ansible-playbook runs of the collection's playbooks against simulated nodes: a first deploy
(one node converges, one is refused: nosuid), a check-mode deploy on a drifted node, a deploy whose
record write fails after the change (read-only state directory), and a fleet audit with an
unreachable host."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for cluster and node

from cluster import REPO, Cluster  # noqa: E402
from node import NodeOptions  # noqa: E402

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
DEST = "/usr/local/libexec/perfgroup/perf_users/perf"


def record(cluster: Cluster, name: str, *args: str) -> None:
    result = cluster.run([ANSIBLE_PLAYBOOK, "-i", str(cluster.inventory), *args])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    (HERE / name).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


def main() -> None:
    cluster = Cluster({"std": NodeOptions(), "nosuid": NodeOptions(nosuid_dirs=("/usr/local/libexec/perfgroup",))})
    try:
        record(cluster, "deploy_first.json", str(REPO / "playbooks/perf_users.yml"))
        cluster.nodes["std"].node.ok(f"chmod o+x {DEST}")
        record(cluster, "deploy_check_drift.json", str(REPO / "playbooks/perf_users.yml"), "--check", "--diff")
        std = cluster.nodes["std"].node
        std.ok("mount --bind /var/lib/perfgroup /var/lib/perfgroup && mount -o remount,bind,ro /var/lib/perfgroup")
        try:
            record(cluster, "deploy_failed_record.json", str(REPO / "playbooks/perf_users.yml"),
                   "-e", json.dumps({"perf_users_caps": "cap_perfmon,cap_syslog"}))
        finally:
            std.ok("umount /var/lib/perfgroup")
        dead = cluster.dir / "dead.ini"
        dead.write_text(cluster.inventory.read_text().replace(
            "[all:vars]", "[perf_nodes]\ndead ansible_host=127.0.0.1 ansible_port=1\n\n[all:vars]"))
        cluster.inventory = dead
        record(cluster, "audit_with_unreachable.json", str(REPO / "playbooks/audit.yml"))
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
