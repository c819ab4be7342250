"""The C allocator settings taken on the first extraction."""

from __future__ import annotations

import platform
import sys

import pytest

from edge.biometrics.allocator import keep_large_blocks


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt settings exist only with glibc",
)
def test_settings_apply_with_glibc_and_only_once() -> None:
    assert keep_large_blocks() is True
    assert keep_large_blocks() is True
    assert keep_large_blocks.cache_info().misses <= 1
