"""The goals page's charts, drawn on the server as SVG (no script): a line per series over
the months, with the target as a dashed line. Pure: numbers in, coordinates out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 32


@dataclass(frozen=True)
class Chart:
    points: str  # "x,y x,y ..." for <polyline>
    dots: list[tuple[float, float]]  # each month's point (a single month is a dot)
    target_y: float | None
    y_labels: list[tuple[float, str]]  # (y, text)
    x_labels: list[tuple[float, str]]  # (x, text)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    bottom_edge: int = HEIGHT - BOTTOM


def line_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    target: float | None = None,
    percent: bool = False,
) -> Chart:
    """``values`` (one per label, in order) scaled to the chart; the y axis starts at 0 and
    reaches the larger of the target and the highest value."""
    top = max([*values, target or 0.0, 1e-9])
    span_x = (WIDTH - LEFT - RIGHT) / max(1, len(values) - 1)
    span_y = HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return round(HEIGHT - BOTTOM - span_y * value / top, 1)

    def x(index: int) -> float:
        return round(LEFT + span_x * index, 1)

    dots = [(x(i), y(v)) for i, v in enumerate(values)]
    points = " ".join(f"{px},{py}" for px, py in dots)
    ticks = [top * k / 4 for k in range(5)]
    y_labels = [(y(t), f"{t * 100:.0f} %" if percent else f"{t:.0f}") for t in ticks]
    every = max(1, len(labels) // 6)
    x_labels = [(x(i), label) for i, label in enumerate(labels) if i % every == 0]
    target_y = y(target) if target is not None else None
    return Chart(points, dots, target_y, y_labels, x_labels)
