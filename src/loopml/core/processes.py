"""Whether a process on this host is still running (for crash recovery of its leftovers)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user).

    >>> pid_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def freeze_long_lived(collect: bool = True) -> bool:
    """Move everything alive now out of the garbage collector's full passes.

    A serving loop (the online server, the streaming learner) starts with its libraries
    and models loaded, all of which live as long as the process: a full collection would
    walk those hundreds of thousands of objects (tens of milliseconds, a stall) every
    time what the loop holds for a moment pushes the collector over its threshold.
    Frozen, a pass walks only what the loop allocated since. ``collect`` first clears
    what is already garbage (a full pass: tens of milliseconds on a big heap -- right at
    a server's start, too much for a loop that may be entered many times). Returns
    whether it froze (a host that froze its own heap is left alone); undo with
    ``gc.unfreeze()``.
    """
    import gc

    if gc.get_freeze_count():
        return False
    if collect:
        gc.collect()
    gc.freeze()
    return True
