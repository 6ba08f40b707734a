"""A program that counts by itself, as PAPI or LIKWID do: perf_event_open(2) system-wide on CPU 0
(pid -1), through ctypes, no perf tool involved. Exit 0 and "counted N" when the kernel allowed
it, exit 1 and the errno name when it refused. Shipped for perf-shell's tests (no compiler needed)."""

import ctypes
import errno
import os
import platform
import struct
import sys

SYSCALL = {"x86_64": 298, "aarch64": 241, "ppc64le": 319, "s390x": 331}
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
ATTR_SIZE = 128  # PERF_ATTR_SIZE_VER7 and later accept a zero-padded larger size; 128 fits all


def main() -> int:
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("IIQ", attr, 0, PERF_TYPE_SOFTWARE, ATTR_SIZE, PERF_COUNT_SW_CPU_CLOCK)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYSCALL[platform.machine()], attr, -1, 0, -1, 0)
    if fd < 0:
        code = ctypes.get_errno()
        print(f"refused: {errno.errorcode.get(code, code)}")
        return 1
    value = struct.unpack("Q", os.read(fd, 8))[0]
    os.close(fd)
    print(f"counted {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
