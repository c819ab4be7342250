"""``make demo`` (scripts/demo.py) end to end, twice in a row, as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def run_demo(project_root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project_root / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        env={**os.environ, "DR_DEMO_OUT": str(out)},
    )


def test_demo_twice_in_a_row(project_root: Path, tmp_path: Path) -> None:
    numbers = []
    for _ in range(2):
        result = run_demo(project_root, tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        number = re.search(r"^CNI request number: ([0-9A-Z]{12})$", result.stdout, re.M)
        receipt = re.search(r"^Receipt: (.+\.pdf)$", result.stdout, re.M)
        assert number is not None, result.stdout
        assert receipt is not None, result.stdout
        assert Path(receipt.group(1)).read_bytes().startswith(b"%PDF-")
        assert "did not stop" not in result.stdout
        numbers.append(number.group(1))
    assert len(numbers) == 2
    # Nothing left running: every process the demo started is gone.
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""
