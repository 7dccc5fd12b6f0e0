"""docker/compose.yaml runs the example service's verified image next to PostgreSQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import PROJECTS, REPO, BuiltImage, exercise_service, free_port, sh, wait_for_http

POSTGRES = "localhost/wheelbarrow/test-postgres:bookworm"


def compose_command() -> list[str]:
    if sh(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose tool: install docker-compose (./dev does)")


def test_compose_runs_the_service_with_postgres(example_image: BuiltImage) -> None:
    sh(["docker", "build", "--network", "host", "-t", POSTGRES, str(PROJECTS / "postgres")])
    compose = [*compose_command(), "-f", str(REPO / "docker" / "compose.yaml"), "-p", f"wbtest{os.getpid()}"]
    port = free_port()
    env = {"POSTGRES_IMAGE": POSTGRES, "APP_IMAGE": example_image.tag, "APP_PORT": str(port)}
    try:
        sh([*compose, "up", "-d"], env=env, timeout=300)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", timeout=60)
        exercise_service(base, b"composed")
    finally:
        logs = sh([*compose, "logs"], env=env, check=False).output
        sh([*compose, "down", "-v"], env=env, check=False)
        Path(os.environ.get("TMPDIR", "/tmp"), "wheelbarrow-compose.log").write_text(logs, encoding="utf-8")
