"""Fixtures shared by every test area.

Area-specific fixtures live in ``tests/fixtures/<area>.py`` and are loaded here, so that any
test (an end-to-end one especially) can use the real parts of every area.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

pytest_plugins: list[str] = [
    "tests.fixtures.broker",
    "tests.fixtures.station",
    "tests.fixtures.keys",
    "tests.fixtures.queue",
    "tests.fixtures.templates",
    "tests.fixtures.central",
    "tests.fixtures.sim",
    "tests.fixtures.dashboard",
    "tests.fixtures.privacy",
    "tests.fixtures.browser",
]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real fingerprint images and reference records (read-only)."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(
            f"test data not found at {SHARED_DATA}: the project expects the shared/ folder "
            "beside its root (see ../shared/data/README.md)"
        )
    return SHARED_DATA
