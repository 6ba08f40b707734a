"""The perfgroup engine: facts, decisions and host changes for a privileged perf users group.

Standard library only, with relative imports only: Ansible ships this package to nodes as
module_utils, so the CLI and the Ansible module run the very same files.
"""

from __future__ import annotations

VERSION = "0.1.0"
