"""`python -m fedjourney.node`: the node container's command."""

import sys

from fedjourney import startup

startup.begin()  # before the imports below: see fedjourney/startup.py

from fedjourney.node.start import main  # noqa: E402

sys.exit(main())
