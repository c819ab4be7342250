"""The French department of a DR station, read from its device id (``dr-<INSEE>-<NN>``).

An INSEE commune code is 5 characters: the department is its first two (``91228`` -> ``91``,
Corsica ``2A004`` -> ``2A``), except overseas, where it is the first three (``97302`` ->
``973``, Guyane).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["UNKNOWN_DEPARTMENT", "department_of"]

UNKNOWN_DEPARTMENT: Final = "?"
_DEVICE_ID: Final = re.compile(r"dr-(?P<insee>(?:\d{2}|2[AB])\d{3})-\d{2}")


def department_of(device_id: str) -> str:
    """Department code of ``device_id``, or ``"?"`` when the id does not follow the scheme."""
    match = _DEVICE_ID.fullmatch(device_id)
    if match is None:
        return UNKNOWN_DEPARTMENT
    insee = match["insee"]
    return insee[:3] if insee.startswith("97") else insee[:2]
