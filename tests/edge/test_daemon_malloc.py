"""The daemon's glibc malloc settings (``daemon.tune_malloc``), checked on the real allocator in a fresh
interpreter: after a library frees one large block (libmpv frees 10 MiB when the doctor's probe player closes),
freed memory must still go back to the system. With glibc's dynamic thresholds it does not: a box played at
~120 MiB instead of ~101 MiB after its first track change (bench/transitions.py measures the daemon)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")

# Frees a 10 MiB block (as libmpv does), then allocates and frees 16 MiB in 1 MiB blocks (decoder buffers as mpv
# allocates them at a track change); prints how much of those 16 MiB the process still holds.
SCRIPT = textwrap.dedent("""
    import ctypes, sys
    from djamms_edge.edge.daemon import tune_malloc
    if sys.argv[1] == "tuned":
        tune_malloc()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def rss():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024

    libc.free(libc.malloc(10 << 20))
    before = rss()
    blocks = [libc.malloc(1 << 20) for _ in range(16)]
    for block in blocks:
        ctypes.memset(block, 1, 1 << 20)
    for block in blocks:
        libc.free(block)
    print(rss() - before)
""")


def kept_mib(mode: str) -> float:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60,
                          check=True)
    return float(proc.stdout)


def test_freed_memory_goes_back_to_the_system_after_a_library_freed_a_large_block() -> None:
    assert kept_mib("tuned") < 2
    assert kept_mib("glibc defaults") > 12  # the case the settings are for: without them the 16 MiB stay
