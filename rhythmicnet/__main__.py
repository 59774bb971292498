"""``python -m rhythmicnet`` = the ``rhythmicnet`` command."""

import sys

from rhythmicnet.cli import main

sys.exit(main())
