"""A job process never outlives the process that supervises it.

    die_with_parent(parent_pid)   first thing in a child: it goes when its parent goes, however that dies
    pid_alive(pid)                whether a process of this machine still runs (a zombie counts as gone)

On Linux the kernel does it (``PR_SET_PDEATHSIG``: SIGKILL the moment the parent exits, SIGKILL of
the parent included); elsewhere a thread polls the parent's pid. The parent may have died before
either was in place, so the child then checks that its parent is still the one that spawned it.

``PR_SET_PDEATHSIG`` fires when the *thread* that spawned the child ends, not only the process:
spawn a supervised child from a thread that outlives it (the local runner's own thread does).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_GONE = 75  # the exit status of a child that found its parent gone (EX_TEMPFAIL)


def die_with_parent(parent_pid: int, interval: float = 1.0) -> str:
    """Make this process end when ``parent_pid`` (its parent) does; returns how ("prctl" or "watcher").

    Exits at once, with PARENT_GONE, when the parent is already gone.
    """
    how = "prctl" if _set_pdeathsig(signal.SIGKILL) else "watcher"
    if how == "watcher":
        watch_parent(parent_pid, interval)
    if os.getppid() != parent_pid:  # it died before the signal was armed: nobody would send it
        os._exit(PARENT_GONE)
    return how


def watch_parent(parent_pid: int, interval: float = 1.0) -> threading.Thread:
    """The fallback: a daemon thread that ends the process once its parent is no longer ``parent_pid``
    (an orphan is re-parented to init or a subreaper, so its parent pid changes)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(PARENT_GONE)

    thread = threading.Thread(target=watch, name="parent-watcher", daemon=True)
    thread.start()
    return thread


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc symbol to call (an unusual build): poll instead
        return False


def pid_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill would signal a process group
        return False
    if os.path.exists("/proc/self/stat"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]  # the name, in parentheses, may hold spaces
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state not in (b"Z", b"X")  # a zombie has ended; only its exit status waits to be read
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
