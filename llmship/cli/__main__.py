"""``python -m llmship.cli``."""

import sys

from llmship.cli import main

sys.exit(main())
