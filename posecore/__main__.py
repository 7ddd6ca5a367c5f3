"""``python -m posecore``: see :mod:`posecore.cli`."""

import signal
import sys

try:
    from posecore.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing
    print("posefit: SIGINT: interrupted; nothing was written", file=sys.stderr)
    sys.exit(130)

try:
    code = main()
except KeyboardInterrupt:  # a second interrupt while main() was reporting the first
    code = 130
# The run is over: a late duplicate of an interrupt (native libraries may re-raise a signal from another
# thread) must not turn an exit that was already reported into a death by SIGINT.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
