"""``python -m posecore``: see :mod:`posecore.cli`."""

import sys

try:
    from posecore.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing
    print("posefit: SIGINT: interrupted; nothing was written", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
