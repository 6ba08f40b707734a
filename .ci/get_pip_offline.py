"""Stand-in for the get-pip.py bootstrap ansible-test downloads from ci-files.testing.ansible.com
(not reachable from CI, which reaches only the package registries): bootstrap pip with the
interpreter's own ensurepip, then let pip install what was asked (pip==X) from the registry.
.ci/run places it where ansible-test looks, under a private HOME."""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
