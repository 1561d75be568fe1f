"""Window/level and distance maths of the viewer (the same formulas run in web/static/js/viewer.js)."""

from __future__ import annotations

import numpy as np
import pytest

from yilianti.diagnostics.imaging.service import PRESETS, apply_window, distance_mm, window_level


def test_presets_are_the_usual_ct_windows() -> None:
    assert PRESETS == {"lung": (1500, -600), "mediastinum": (350, 50), "bone": (2000, 300), "brain": (80, 40)}


@pytest.mark.parametrize(("value", "grey"), [
    (-2000, 0), (-1350, 0),  # below the lung window: black
    (-600, 128), (-599.5, 128),  # the centre is mid-grey
    (149, 255), (500, 255),  # above: white
    (-975, 64),  # a quarter of the way up
])
def test_lung_window(value: float, grey: int) -> None:
    width, center = PRESETS["lung"]
    assert window_level(value, center, width) == grey


def test_brain_window_separates_grey_and_white_matter() -> None:
    width, center = PRESETS["brain"]
    assert window_level(0, center, width) == 0  # CSF/water at the bottom edge
    assert window_level(80, center, width) == 255  # fresh blood at the top
    assert window_level(30, center, width) < window_level(40, center, width) < window_level(45, center, width)


def test_narrowest_window_is_a_threshold() -> None:
    assert window_level(9, 10, 1) == 0 and window_level(10, 10, 1) == 255


def test_vectorised_window_equals_the_scalar_one() -> None:
    values = np.arange(-2048, 3072, 7, dtype=np.float64)
    for width, center in [*PRESETS.values(), (1, 10), (2, 0), (4095, 1023)]:
        expected = np.array([window_level(v, center, width) for v in values], dtype=np.uint8)
        assert np.array_equal(apply_window(values, center, width), expected), (width, center)


def test_distance_uses_row_and_column_spacing() -> None:
    # PixelSpacing is (row spacing, column spacing): 3 columns right, 4 rows down
    assert distance_mm((10, 10), (13, 14), (0.5, 1.0)) == pytest.approx((3.0 ** 2 + 2.0 ** 2) ** 0.5)
    assert distance_mm((0, 0), (3, 4), (1.0, 1.0)) == pytest.approx(5.0)
