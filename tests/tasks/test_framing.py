from hypothesis import assume, given
from hypothesis import strategies as st

from tasks.framing import RATIOS, box_around, fit_within, largest_exact, nearest_ratio

sizes = st.integers(min_value=300, max_value=8000)
ratios = st.sampled_from(sorted(RATIOS))
fractions = st.floats(min_value=0, max_value=1)


@given(sizes, sizes, ratios)
def test_crops_are_exact_ratio_with_even_sides_inside_the_image(width, height, ratio):
    a, b = RATIOS[ratio]
    w, h = largest_exact(width, height, a, b)
    assert w * b == h * a and w % 2 == 0 and h % 2 == 0
    assert 0 < w <= width and 0 < h <= height
    assert w + 2 * a > width or h + 2 * b > height  # the largest such crop


@given(sizes, sizes, ratios, fractions, fractions)
def test_the_box_lies_inside_and_keeps_the_focus(width, height, ratio, fx, fy):
    w, h = largest_exact(width, height, *RATIOS[ratio])
    left, top, right, bottom = box_around(width, height, w, h, (fx, fy))
    assert left >= 0 and top >= 0 and right <= width and bottom <= height
    assert (right - left, bottom - top) == (w, h)
    assert left <= fx * width <= right and top <= fy * height <= bottom


@given(sizes, sizes, ratios, st.integers(min_value=300, max_value=4096))
def test_fitting_keeps_the_exact_ratio_and_even_sides(width, height, ratio, max_side):
    a, b = RATIOS[ratio]
    w, h = fit_within(*largest_exact(width, height, a, b), max_side)
    assert w * b == h * a and w % 2 == 0 and h % 2 == 0 and max(w, h) <= max(max_side, 2)


@given(sizes, sizes, st.sampled_from([(1280, 720), (720, 1280), (1792, 1024), (1024, 1792)]))
def test_size_enum_crops_have_that_size_s_own_ratio(width, height, size):
    assume(min(width, height) >= 300)
    w, h = largest_exact(width, height, *size, even=False)
    assert w * size[1] == h * size[0]


def test_auto_picks_the_nearest_allowed_ratio():
    allowed = ("16:9", "9:16", "1:1")
    assert nearest_ratio(1920, 1080, allowed) == "16:9"
    assert nearest_ratio(1080, 1920, allowed) == "9:16"
    assert nearest_ratio(1000, 1100, allowed) == "1:1"
    assert nearest_ratio(1600, 1200, allowed) == "16:9"   # a 4:3 tie goes landscape
    assert nearest_ratio(1200, 1600, allowed) == "9:16"
    assert nearest_ratio(1000, 1000, ("16:9", "9:16")) in ("16:9", "9:16")
