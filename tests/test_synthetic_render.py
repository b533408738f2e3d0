"""The renderer: deterministic, ids differ, and the drawn objects are the ground truth."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from object_counting import components, object_mask

from countclip.synthetic import (
    COLOURS,
    SHAPES,
    Scene,
    layout_scene,
    parse_scene_url,
    render_sample,
    render_scene,
    scene_for_id,
    scene_url,
)
from countclip.synthetic.layout import (
    CONTROL_MODES,
    FIT_ALL_DIAMETER,
    GAP,
    MARGIN,
    control_diameters,
    control_mode,
)
from countclip.synthetic.render import MIN_DIAMETER


def test_render_is_deterministic_and_ids_differ() -> None:
    scene = Scene(123, 5, "star", "red")
    a, b = render_scene(scene), render_scene(scene)
    assert a.mode == "RGB" and a.size == (224, 224)
    assert a.tobytes() == b.tobytes()
    other = render_scene(Scene(124, 5, "star", "red"))
    assert other.tobytes() != a.tobytes()
    assert render_scene(scene, 64).size == (64, 64)


@pytest.mark.parametrize("count", range(1, 11))
def test_layout_objects_do_not_overlap_and_stay_countable(count: int) -> None:
    for sample_id in range(60):
        placements = layout_scene(Scene(sample_id, count, "square", "blue"))
        assert len(placements) == count
        for p in placements:
            assert 2 * p.radius >= MIN_DIAMETER - 1e-9  # >= ~9 % of the side even at 64 px
            assert p.radius <= p.x <= 1 - p.radius and p.radius <= p.y <= 1 - p.radius
            assert MARGIN + p.radius - 1e-9 <= min(p.x, p.y)
            assert max(p.x, p.y) <= 1 - MARGIN - p.radius + 1e-9
        for p, q in itertools.combinations(placements, 2):
            assert (p.x - q.x) ** 2 + (p.y - q.y) ** 2 >= (p.radius + q.radius + GAP - 1e-9) ** 2
        assert layout_scene(Scene(sample_id, count, "square", "blue")) == placements


def test_every_count_draws_sizes_from_ranges_shared_by_all_counts() -> None:
    """Cue control: each mode's size range serves every count 2..10 (ten objects of the largest
    still fit), so item size alone says little; "equal area" keeps the total area in one range."""
    modes = Counter(control_mode(i) for i in range(3000))
    assert set(modes) == set(CONTROL_MODES) and min(modes.values()) > 500
    rng = random.Random(0)
    for count in range(2, 11):
        for mode in CONTROL_MODES:
            for _ in range(50):
                sizes = control_diameters(mode, count, rng)
                assert len(sizes) == count and sizes == sorted(sizes, reverse=True)
                assert min(sizes) >= MIN_DIAMETER
                if mode == "equal area":
                    total = sum(d * d for d in sizes)
                    assert 10 * MIN_DIAMETER**2 * 0.9 <= total <= 10 * FIT_ALL_DIAMETER**2 * 1.11
                else:
                    assert max(sizes) <= FIT_ALL_DIAMETER * 1.05 + 1e-12
    with pytest.raises(ValueError, match="control mode"):
        control_diameters("bigger", 3, rng)


def test_the_largest_object_no_longer_reads_the_count() -> None:
    """The old renderer capped diameters at 0.62/sqrt(count): ten objects were never larger
    than ~0.2 while two reached 0.44. Now both ends of the count range share the sizes."""

    def largest(count: int) -> list[float]:
        return [
            2 * max(p.radius for p in layout_scene(Scene(i, count, "circle", "red")))
            for i in range(300)
        ]

    two, ten = sorted(largest(2)), sorted(largest(10))
    assert two[len(two) // 2] < 0.25  # half of the pairs are as small as ten-object scenes
    assert ten[-1] >= 0.19 and two[0] <= 0.14


def test_ten_objects_stay_countable_at_the_download_size() -> None:
    """At 64 px, the training size, the objects of crowded scenes stay separate blobs."""
    wrong = 0
    for i in range(80):
        scene = Scene(7000 + i, 10, SHAPES[i % len(SHAPES)], COLOURS[i % len(COLOURS)])
        wrong += components(object_mask(render_scene(scene, 64), scene.colour), 3) != 10
    assert wrong <= 2  # a star tip may touch its neighbour's across a 2-pixel gap


def test_rendered_objects_are_the_ground_truth_count() -> None:
    """Count blobs of the object colour in the picture: they equal the scene's count."""
    for i, (shape, count) in enumerate(itertools.product(SHAPES, (1, 2, 3, 5, 7, 10))):
        colour = COLOURS[i % len(COLOURS)]
        scene = Scene(1000 + i, count, shape, colour)
        mask = object_mask(render_scene(scene), colour)
        assert components(mask) == count, scene


def test_count_zero_is_a_dense_pattern() -> None:
    for i, shape in enumerate(SHAPES):
        scene = Scene(500 + i, 0, shape, COLOURS[i])
        assert components(object_mask(render_scene(scene), scene.colour)) >= 16


def test_backgrounds_contrast_with_every_colour_and_vary() -> None:
    for colour in COLOURS:
        corners = set()
        for sample_id in range(20):
            img = render_scene(Scene(sample_id, 1, "circle", colour), 64)
            assert not object_mask(img, colour)[:3, :3].any()  # corners are background
            corners.add(img.getpixel((0, 0)))
        assert len(corners) > 5


def test_scene_url_round_trip_and_validation() -> None:
    scene = Scene(42, 7, "heart", "purple")
    url = scene_url("http://127.0.0.1:8000/", scene)
    assert url == "http://127.0.0.1:8000/img/42.jpg?n=7&shape=heart&colour=purple"
    assert parse_scene_url(url) == scene
    assert parse_scene_url("/img/42.jpg?n=7&shape=heart&colour=purple") == scene
    assert parse_scene_url("ftp://h/img/42.jpg?n=7&shape=heart&colour=purple") == scene
    assert parse_scene_url("/img/42.jpg") == scene_for_id(42)
    for bad in (
        "/images/42.jpg",
        "/img/42.jpg?n=3",
        "/img/42.jpg?n=x&shape=star&colour=red",
        "/img/42.jpg?n=11&shape=star&colour=red",
        "/img/42.jpg?n=3&shape=blob&colour=red",
    ):
        with pytest.raises(ValueError):
            parse_scene_url(bad)
    with pytest.raises(ValueError, match="colour"):
        Scene(1, 2, "star", "teal")


def test_render_sample_gives_image_count_and_kind() -> None:
    img, count, kind = render_sample(77, 64)
    scene = scene_for_id(77)
    assert (count, kind) == (scene.count, (scene.shape, scene.colour))
    assert img.tobytes() == render_scene(scene, 64).tobytes()
