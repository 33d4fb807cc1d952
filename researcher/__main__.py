"""`python -m fedjourney.researcher`: the researcher container's command (one experiment)."""

import logging
import os
import sys

from fedjourney import startup

startup.begin()  # before the imports below: see fedjourney/startup.py

from fedjourney.researcher.run import main  # noqa: E402

status = main()
# Everything is written and flushed by now; a normal interpreter exit would then wait about
# 4 s for Fed-BioMed's gRPC server threads, and `docker compose up` with it.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(status)
