"""The tree passes ruff (pyflakes, pycodestyle, bugbear; config in pyproject.toml)."""
import subprocess
import sys

from .conftest import REPO


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(REPO)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
