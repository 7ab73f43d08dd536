"""Fair partition refreshes across cameras (pure): the oldest partition is refreshed first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def pick_camera(refreshed_at: Mapping[str, float], ready: Iterable[str]) -> str | None:
    """The camera to refresh next among those with an input ``ready``, or None.

    A camera never refreshed comes first; then the one refreshed longest ago (ties by id), so a
    busy or fast camera cannot starve the others: each waits at most one round of the rest.
    """
    candidates = list(ready)
    if not candidates:
        return None
    return min(candidates, key=lambda c: (refreshed_at.get(c, float("-inf")), c))
