"""`python -m fedjourney.node`: the node container's command."""

import sys

from fedjourney.node.start import main

sys.exit(main())
