"""`python -m fedjourney.researcher`: the researcher container's command (one experiment)."""

import sys

from fedjourney.researcher.run import main

sys.exit(main())
