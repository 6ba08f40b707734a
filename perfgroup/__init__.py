"""perfgroup: a privileged perf users group, done right on every node, and proven."""

from .engine import VERSION as __version__

__all__ = ["__version__"]
