"""A toy solution module."""

from __future__ import annotations

from solutions.phase1_face_swap.helper import double


def centre(points: list[float]) -> list[float]:
    """Subtract the mean."""
    n = len(points)
    # TODO p1.toy.centre: Subtract the mean from every value. It keeps the spread.
    # Hint: mean = sum / n.
    # BEGIN SOLUTION p1.toy.centre
    mean = sum(points) / n
    return [double(p - mean) / 2 for p in points]
    # END SOLUTION


def scale(points: list[float] | None) -> list[float]:
    """Twice every value; an empty list for None."""
    if points is None:
        # TODO p1.toy.scale: Return an empty list.
        # BEGIN SOLUTION p1.toy.scale
        return []
        # END SOLUTION
    return [2 * p for p in points]
