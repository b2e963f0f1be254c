"""``python -m gossipnet.sim``: the simulator (see cli.py; ``--help`` for its command line)."""

import sys

from gossipnet import console
from gossipnet.sim.cli import main

sys.exit(console.run(main))
