"""``python -m gossipnet.sim``: the simulator (see cli.py; ``--help`` for its command line)."""

import sys

from gossipnet.sim.cli import main

sys.exit(main())
