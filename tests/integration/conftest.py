"""pytest-docker wiring: the stack under test is a small federation (3 centres x 30
patients, 3 rounds), brought up once per session and torn down with `down -v`, with
compose_command(): $FEDJOURNEY_COMPOSE when set, else Compose v2 where installed, else 1.29
(test_compose_up.py runs under each generation installed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fedjourney import settings
from fedjourney.errors import FedjourneyError
from tests.integration.stack import Stack, compose_command, small_federation

RUN_ID = "itest-run-1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    if shutil.which("docker") is None:
        pytest.fail("Docker is not installed: run scripts/test (it provisions an engine)")
    try:
        return compose_command()
    except FedjourneyError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def docker_compose_file(stack_dir: Path) -> str:
    os.environ[settings.RUN_ID.env] = RUN_ID
    os.environ[settings.NODE_DEADLINE.env] = "180"
    os.environ[settings.KEEP.env] = "1"  # the tests below use the nodes after the run
    return str(small_federation(stack_dir)[1])


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"fjtest{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up -d"]  # returns once the generators completed and the rest started


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v"]


@pytest.fixture(scope="session")
def stack(docker_services: object, docker_compose_file: str,
          docker_compose_project_name: str) -> Stack:
    """The running stack (pytest-docker's docker_services brought it up)."""
    return Stack(Path(docker_compose_file), docker_compose_project_name)


@pytest.fixture(scope="session")
def finished_run(stack: Stack, stack_dir: Path) -> Path:
    """Waits (with deadlines) for the researcher, then for the results on the host."""
    status = stack.wait_exit("researcher", timeout=400)
    if status != 0:
        pytest.fail(f"researcher exited {status}:\n{stack.logs('researcher')[-4000:]}")
    assert stack.wait_exit("results", timeout=60) == 0, stack.logs("results")
    return stack_dir / "results" / RUN_ID
