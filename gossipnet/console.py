"""What every command-line entry point does with its output: end quietly when the reader goes away.

``python visualizer.py | head`` closes the pipe early; like any Unix tool, the
script then stops at once with the status a shell gives a SIGPIPE, instead of
printing a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

# What a shell reports for a program ended by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def run(main: Callable[[], int | None]) -> int:
    """Run a script's ``main``; its exit status, or EXIT_BROKEN_PIPE when its reader went away."""
    try:
        status = main()
        sys.stdout.flush()  # a broken pipe shows here when the output was buffered
        return status or 0
    except BrokenPipeError:
        # Python flushes stdout again on the way out: point it at /dev/null so that fails no more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
