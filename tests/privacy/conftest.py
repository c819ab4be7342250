"""The station's end-to-end world (tests/station/conftest.py), reused for the privacy scans."""

from tests.station.conftest import sensor, world

__all__ = ["sensor", "world"]
