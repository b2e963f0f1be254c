"""``python -m gossipnet.lab``: the fault lab (see cli.py; ``--help`` for its command line)."""

import sys

from gossipnet import console
from gossipnet.lab.cli import main

sys.exit(console.run(main))
