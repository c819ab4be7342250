"""The station's ``world`` (broker, central, simulators, provisioned device) reused here: the
appliance tests run the real ``dr-edge run`` process against it."""

from tests.station.conftest import sensor, world

__all__ = ["sensor", "world"]
