"""``python -m posecore``: see :mod:`posecore.cli`."""

import sys

from posecore.cli import main

sys.exit(main())
