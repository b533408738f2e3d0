"""The renderer: deterministic, ids differ, and the drawn objects are the ground truth."""

from __future__ import annotations

import itertools

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
        for p, q in itertools.combinations(placements, 2):
            assert (p.x - q.x) ** 2 + (p.y - q.y) ** 2 >= (p.radius + q.radius) ** 2


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
