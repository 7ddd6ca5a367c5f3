"""``python -m posecore``: see :mod:`posecore.cli`."""

import signal
import sys

_received: list[str] = []


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM before main() installs its own handler (torch is still importing): end like Ctrl-C."""
    _received.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


if hasattr(signal, "SIGTERM"):
    signal.signal(signal.SIGTERM, _interrupt)

try:
    from posecore.cli import main
except KeyboardInterrupt:  # Ctrl-C or SIGTERM while torch is still importing
    name = _received[-1] if _received else "SIGINT"
    print(f"posefit: {name}: interrupted; nothing was written", file=sys.stderr)
    sys.exit(143 if name == "SIGTERM" else 130)

try:
    code = main()
except KeyboardInterrupt:  # a second interrupt while main() was reporting the first
    code = 130
# The run is over: a late duplicate of an interrupt (native libraries may re-raise a signal from another
# thread) must not turn an exit that was already reported into a death by a signal.
signal.signal(signal.SIGINT, signal.SIG_IGN)
if hasattr(signal, "SIGTERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.exit(code)
