"""Named kill points, for crash tests: ``CURATOR_KILL_AT=release:record`` SIGKILLs the process there.

The tests kill a real ``curator`` subprocess at every named step of a build and
check that the next command finds a consistent workspace. Unset (always, outside
tests), :func:`reached` is one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "CURATOR_KILL_AT"


def reached(name: str) -> None:
    """Die here, at once and without clean-up, when ``$CURATOR_KILL_AT`` names this point."""
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)
