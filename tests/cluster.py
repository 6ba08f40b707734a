"""A simulated cluster: throwaway nodes, each running its own sshd on 127.0.0.1 and its own port,
root login by a test key only. Ansible (the real ansible-playbook) drives them over real SSH.
Everything Ansible keeps on the controller side lives in the cluster's temp directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from node import Node, NodeOptions

REPO = Path(__file__).resolve().parent.parent
# The node Pythons perfgroup supports (ansible-core's oldest target, RHEL 9, Ubuntu 22.04, newer):
# a cluster node runs the modules and the engine with one of them.
PYENV = Path("/root/.pyenv/versions")
NODE_PYTHONS = {"3.8": "3.8.18", "3.9": "3.9.18", "3.10": "3.10.13", "3.12": "3.12.1", "3.13": "3.13.0"}


def node_python(version: str) -> str:
    return str(PYENV / NODE_PYTHONS[version] / "bin" / "python")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey /etc/ssh/perfgroup_test_host_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
StrictModes no
AuthorizedKeysFile /etc/ssh/perfgroup_test_authorized_keys
KexAlgorithms curve25519-sha256
MaxStartups 100
Subsystem sftp internal-sftp
"""


class SshNode:
    def __init__(self, name: str, options: NodeOptions, public_key: str) -> None:
        self.name = name
        self.node = Node(options)
        self.port = free_port()
        self.node.ok("mkdir -p /run/sshd && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/perfgroup_test_host_key")
        self.node.run(["sh", "-c", "cat > /etc/ssh/perfgroup_test_authorized_keys"], input=public_key)
        self.node.run(["sh", "-c", "cat > /etc/ssh/perfgroup_test_sshd_config"], input=SSHD_CONFIG.format(port=self.port))
        self.sshd = subprocess.Popen(
            self.node.argv(["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/perfgroup_test_sshd_config"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise RuntimeError(f"sshd for {self.name} exited: {self.sshd.stderr.read() if self.sshd.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd for {self.name} did not listen on 127.0.0.1:{self.port}")

    def close(self) -> None:
        if self.sshd.poll() is None:
            self.sshd.kill()
        self.sshd.wait(timeout=30)
        self.node.close()


class Cluster:
    def __init__(self, variants: dict[str, NodeOptions], group_of: dict[str, str] | None = None,
                 host_vars: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="perfgroup-cluster-"))
        self.key = self.dir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        public = (self.dir / "id_ed25519.pub").read_text()
        self.nodes: dict[str, SshNode] = {}
        try:
            for name, options in variants.items():
                self.nodes[name] = SshNode(name, options, public)
        except Exception:
            self.close()
            raise
        self.inventory = self.dir / "inventory.ini"
        self.inventory.write_text(self._inventory(group_of or {}, host_vars or {}))
        # The checkout is the collection perfgroup.hpc: make it findable the way Ansible looks.
        self.collections = self.dir / "collections"
        (self.collections / "ansible_collections" / "perfgroup").mkdir(parents=True)
        (self.collections / "ansible_collections" / "perfgroup" / "hpc").symlink_to(REPO)

    def _inventory(self, group_of: dict[str, str], host_vars: dict[str, str]) -> str:
        groups: dict[str, list[str]] = {}
        for name, ssh in self.nodes.items():
            groups.setdefault(group_of.get(name, "perf_nodes"), []).append(
                f"{name} ansible_host=127.0.0.1 ansible_port={ssh.port} {host_vars.get(name, '')}".rstrip())
        lines = []
        for group, hosts in groups.items():
            lines += [f"[{group}]", *hosts, ""]
        lines += [
            "[all:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={self.key}",
            "ansible_python_interpreter=/usr/bin/python3",
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'",
        ]
        return "\n".join(lines) + "\n"

    def env(self) -> dict[str, str]:
        home = self.dir / "ansible"
        return {
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "NO_COLOR": "1",
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_STDOUT_CALLBACK": "perfgroup.hpc.perfgroup_json",
            "ANSIBLE_PIPELINING": "True",
        }

    def run(self, argv: list[str], timeout: float = 600, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env={**self.env(), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=REPO)

    def close(self) -> None:
        control = self.dir / "ansible" / "cp"
        if control.is_dir():  # stop the ControlPersist masters this cluster's runs started
            for sock in control.iterdir():
                subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "dummy"],
                               capture_output=True, timeout=30, check=False)
        for ssh in self.nodes.values():
            ssh.close()
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)
