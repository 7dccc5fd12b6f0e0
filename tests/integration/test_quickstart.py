"""The README's Quickstart is what CI runs: .ci/run takes its first fenced block, line by line, and each
line starts with ./dev, which needs nothing but python3 to find or install the rest."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def quickstart_block() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Quickstart") :]
    found = re.search(r"^```\w*\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert found, "no fenced block under ## Quickstart"
    return found[1].splitlines()


def test_the_quickstart_is_two_dev_commands_one_for_the_main_job_one_for_the_tests() -> None:
    words = [line.split("#")[0].split() for line in quickstart_block()]
    assert words == [["./dev", "build_wheels"], ["./dev", "tests"]]
    assert os.access(REPO / "dev", os.X_OK)


def test_ci_runs_exactly_the_readme_block(tmp_path: Path) -> None:
    """.ci/run's own extraction, run on the README and on a README whose block changed."""
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    (program,) = re.findall(r"quickstart=\$\(awk '(.*?)' README\.md\)", run)
    assert "./dev lint" in run
    assert 'bash -euo pipefail -c "$line" </dev/null' in run

    def extracted(readme: str) -> list[str]:
        (tmp_path / "README.md").write_text(readme, encoding="utf-8")
        out = subprocess.run(["awk", program, "README.md"], cwd=tmp_path, capture_output=True, text=True, check=True)
        return out.stdout.splitlines()

    assert extracted((REPO / "README.md").read_text(encoding="utf-8")) == quickstart_block()
    other = "# x\n```console\nno\n```\n## Quickstart\ntext\n```console\na one\nb two\n```\n```console\nc\n```\n"
    assert extracted(other) == ["a one", "b two"]


def test_dev_needs_a_session_and_says_how_to_name_one() -> None:
    out = subprocess.run([str(REPO / "dev")], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "usage: ./dev SESSION..." in out.stderr
