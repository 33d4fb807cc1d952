"""Every FEDJOURNEY_* setting, declared once: its variable, type, default, who reads it and
what it does. Containers read theirs through `Setting.read`; the compose files pass on the
ones a role reads (host/deployment.py); the scripts, benchmarks and tests take the names
from here; the configuration page's table is generated from this list
(`python -m fedjourney.settings --write docs/configuration.md`, checked by a test), and a
test fails when a FEDJOURNEY_* name anywhere in the repository is not declared here.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedjourney import doctable
from fedjourney.errors import FedjourneyError

# Who reads a setting: the containers' roles, and the host's tools.
NODE, RESEARCHER, COLLECTOR, SITE = "node", "researcher", "results", "kit site's node"
TUNNEL = "kit site's tunnel"  # read by compose into its command, not from its environment
NOTEBOOK = "notebook"
GENERATE, RUN, BUILD, SETUP, TESTS, IMAGE = ("fedjourney generate", "scripts/run",
                                             "scripts/build-images", "scripts/ensure-docker",
                                             "the tests", "the images")
KINDS = ("flag", "seconds", "text", "path", "port", "command")


@dataclass(frozen=True)
class Setting:
    """One environment variable. `passed`: the compose files hand the host's value to the
    containers of `readers` (which are roles); otherwise it is the host's own, or set by the
    deployment itself. `required`: a kit cannot start without it (the message Compose
    prints)."""

    env: str
    kind: str
    default: str
    readers: tuple[str, ...]
    doc: str
    passed: bool = False
    required: str | None = None

    def raw(self, environ: Mapping[str, str] | None = None) -> str:
        """The value as set (surrounding spaces dropped), or the default."""
        value = (os.environ if environ is None else environ).get(self.env, "").strip()
        return value or self.default

    def read(self, environ: Mapping[str, str] | None = None) -> Any:
        """The value, typed by kind: a flag is a bool, seconds a float or None (unset), a
        port an int, anything else text. A bad value is a one-line FedjourneyError."""
        value = self.raw(environ)
        if self.kind == "flag":
            if value not in ("0", "1"):
                raise FedjourneyError(f"{self.env}: {value[:20]!r} is not a flag; use 1 or 0")
            return value == "1"
        if self.kind == "seconds":
            if not value:
                return None
            try:
                seconds = float(value)
            except ValueError:
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds > 0):
                raise FedjourneyError(f"{self.env}: {value[:20]!r} is not a number of "
                                      "seconds > 0; fix it or unset it")
            return seconds
        if self.kind == "port":
            if not (value.isdigit() and 0 < int(value) < 65536):
                raise FedjourneyError(f"{self.env}: {value[:20]!r} is not a TCP port (1-65535)")
            return int(value)
        return value


S = Setting  # short, for the table below


# --- the run: set on the host, passed to the roles that read them ---------------------------
RUN_ID = S("FEDJOURNEY_RUN_ID", "text", "", (RESEARCHER, COLLECTOR, RUN),
           "the run's id (default: a new one); with RESUME=1, the run to continue", True)
EXPERIMENT = S("FEDJOURNEY_EXPERIMENT", "text", "", (RESEARCHER, RUN),
               "a named experiment of the config instead of `training`", True)
RESUME = S("FEDJOURNEY_RESUME", "flag", "0", (RESEARCHER, RUN),
           "1: continue the run RUN_ID from its last completed round", True)
KEEP = S("FEDJOURNEY_KEEP", "flag", "0", (NODE, RUN),
         "1: the nodes stay up after the run (inspection, more experiments)", True)
VERBOSE = S("FEDJOURNEY_VERBOSE", "flag", "0", (NODE, RESEARCHER, RUN),
            "1: Fed-BioMed's own log lines on the console too; raw build output", True)
NODE_DEADLINE = S("FEDJOURNEY_NODE_DEADLINE", "seconds", "", (NODE, RESEARCHER),
                  "overrides training.node_deadline_s: how long a node tries to connect, "
                  "and the researcher waits for every node", True)
ROUND_DEADLINE = S("FEDJOURNEY_ROUND_DEADLINE", "seconds", "", (RESEARCHER,),
                   "overrides training.round_deadline_s: when a round leaves late nodes out",
                   True)
COLLECT_DEADLINE = S("FEDJOURNEY_COLLECT_DEADLINE", "seconds", "7200", (COLLECTOR,),
                     "how long the results collector waits for the run to end", True)
# --- set by the deployment itself -----------------------------------------------------------
CONFIG = S("FEDJOURNEY_CONFIG", "path", "/etc/fedjourney/federation.yaml", (NODE, RESEARCHER),
           "the role's view of the federation config, inside its container")
CENTRE_ID = S("FEDJOURNEY_CENTRE_ID", "text", "", (NODE,), "the centre this node serves")
HEALTH_FILE = S("FEDJOURNEY_HEALTH_FILE", "path", "/tmp/fedjourney-health",
                (IMAGE, NODE, RESEARCHER),
                "the file a role writes once ready; the images' health check reads it")
# --- a hospital kit's site ------------------------------------------------------------------
RESEARCHER_ADDRESS = S(
    "FEDJOURNEY_RESEARCHER_ADDRESS", "text", "", (TUNNEL,),
    "the IP address the site's tunnel reaches the researcher's gate at (host-gateway on one "
    "host)", True,
    required="the IP address this site reaches the researcher at")
RESEARCHER_PORT = S("FEDJOURNEY_RESEARCHER_PORT", "port", "50051", (SITE, TUNNEL),
                    "the researcher's gRPC port, as the researcher kit's gate publishes it "
                    "and a site's node dials it through its tunnel", True)
RESEARCHER_FINGERPRINT = S(
    "FEDJOURNEY_RESEARCHER_FINGERPRINT", "text", "", (SITE,),
    "the SHA-256 of the researcher's certificate, given out of band; the node accepts no "
    "other", True, required="the sha256 of the researcher certificate, given out of band")
# --- the notebook researcher (scripts/notebook) ----------------------------------------------
NOTEBOOK_TOKEN = S("FEDJOURNEY_NOTEBOOK_TOKEN", "text", "", (NOTEBOOK,),
                   "JupyterLab's token; the notebook refuses to start without one "
                   "(scripts/notebook makes one)", True)
NOTEBOOK_PORT = S("FEDJOURNEY_NOTEBOOK_PORT", "port", "8888", (NOTEBOOK,),
                  "the host port JupyterLab is published on, on 127.0.0.1 only", True)
# --- the host's tools -----------------------------------------------------------------------
COMPOSE = S("FEDJOURNEY_COMPOSE", "command", "", (RUN, TESTS),
            "the Compose to use: `docker compose` (v2) or `docker-compose` (1.29); "
            "default: v2 when installed")
SYNTHEA_JAR = S("FEDJOURNEY_SYNTHEA_JAR", "path", "", (GENERATE,),
                "the Synthea JAR of the `synthea` engine (never downloaded)")
IMAGES_PREBUILT = S("FEDJOURNEY_IMAGES_PREBUILT", "flag", "0", (RUN, TESTS),
                    "1: trust that the images are built; do not check them")
BASE_IMAGE = S("FEDJOURNEY_BASE_IMAGE", "text", "", (BUILD,),
               "a Python 3.11 base image to build on (default: python:3.11-slim-bookworm "
               "where a registry answers, else a local Debian base)")
LOCAL_BASE_IMAGE = S("FEDJOURNEY_LOCAL_BASE_IMAGE", "text",
                     "fedjourney/python-base:3.11-bookworm", (BUILD,),
                     "the name of the base image built from Debian's packages")
DEBIAN_MIRROR = S("FEDJOURNEY_DEBIAN_MIRROR", "text", "", (BUILD,),
                  "the Debian mirror for that base (default: the host's apt source)")
IMAGE_CACHE = S("FEDJOURNEY_IMAGE_CACHE", "path", "~/.cache/fedjourney/images", (BUILD,),
                "the wheelhouse (about 3 GB), build contexts and logs")
CA_BUNDLE = S("FEDJOURNEY_CA_BUNDLE", "path", "/etc/ssl/certs/ca-certificates.crt", (BUILD,),
              "the CA bundle of the download step (never copied into an image)")
KEEP_BUILD_STAGES = S("FEDJOURNEY_KEEP_BUILD_STAGES", "flag", "0", (BUILD,),
                      "1: keep the legacy builder's build-stage images (~10 GB)")
DOCKER_WAIT = S("FEDJOURNEY_DOCKER_WAIT", "seconds", "90", (SETUP,),
                "how long to wait for a Docker engine it started")
DOCKERD_LOG = S("FEDJOURNEY_DOCKERD_LOG", "path", "/var/log/fedjourney-dockerd.log", (SETUP,),
                "the log of a Docker engine it started")
SKIP_IMAGE_TESTS = S("FEDJOURNEY_SKIP_IMAGE_TESTS", "flag", "0", (TESTS,),
                     "1: skip the image tests (only when asked)")
REFERENCE = S("FEDJOURNEY_REFERENCE", "path", "", (TESTS,),
              "an unpacked folder of real Synthea outputs instead of tests/reference/")
KIT_ADDRESS = S("FEDJOURNEY_KIT_ADDRESS", "text", "host-gateway", (TESTS,),
                "the address the hospital-kit test's sites dial")

SETTINGS: tuple[Setting, ...] = tuple(v for v in dict(globals()).values()
                                      if isinstance(v, Setting))


def passed_to(role: str) -> tuple[Setting, ...]:
    """The settings the compose files pass from the host to a role's containers."""
    return tuple(s for s in SETTINGS if s.passed and role in s.readers and s.required is None)


# --- the documentation table ----------------------------------------------------------------
BEGIN, END = "<!-- settings: generated by `python -m fedjourney.settings` -->", \
    "<!-- end of settings -->"


def markdown() -> str:
    """The table of every setting, for docs/configuration.md."""
    lines = ["| variable | default | read by | from the host | meaning |",
             "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "-"
        passed = "required" if s.required else "passed on" if s.passed else "-"
        lines.append(f"| `{s.env}` | {default} | {', '.join(s.readers)} | {passed} | {s.doc} |")
    return "\n".join(lines) + "\n"


def with_table(page: str) -> str:
    """The page with its generated block replaced by the current table."""
    return doctable.with_block(page, BEGIN, END, markdown())


def main(argv: list[str] | None = None) -> int:
    return doctable.main(argv, "python -m fedjourney.settings", "settings table", with_table,
                         markdown)


if __name__ == "__main__":
    sys.exit(main())
