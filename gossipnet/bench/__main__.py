"""``python -m gossipnet.bench``: the benchmark (see cli.py; ``--help`` for its command line)."""

import sys

from gossipnet import console
from gossipnet.bench.cli import main

sys.exit(console.run(main))
