"""Time commands side by side: each round runs every command once, in turn, so drift in the
machine's load hits all of them alike. Prints {name: [seconds, ...]} as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def main() -> None:
    runs = int(sys.argv[1])
    commands: dict[str, list[str]] = json.loads(sys.argv[2])
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm caches once
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for _ in range(runs):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            samples[name].append(time.perf_counter() - start)
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
