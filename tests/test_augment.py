"""Count-preserving augmentation: every pose keeps every object in the frame."""

from __future__ import annotations

import pytest
import torch
from object_counting import components, object_mask
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from pydantic import ValidationError

from countclip.config import TrainConfig
from countclip.synthetic.render import render_scene
from countclip.synthetic.world import Scene
from countclip.training.augment import CountPreservingAugment, training_transform
from countclip.training.model import TINY_MODEL, create_model

SIZE = 64
_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD).view(3, 1, 1)


@pytest.fixture(scope="module")
def transforms():
    from countclip.config import ModelConfig

    _, preprocess_train, preprocess_val, _ = create_model(ModelConfig(name=TINY_MODEL))
    return preprocess_train, preprocess_val


def _red_objects(tensor: torch.Tensor) -> int:
    """Red objects (any size: a crop may leave a sliver) in a normalised image tensor."""
    rgb = ((tensor * _STD + _MEAN).clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    return components(object_mask(rgb, "red"), min_pixels=1)


def _scenes(n: int) -> list[Scene]:
    return [Scene(1000 + i, 10, "circle", "red") for i in range(n)]


def test_every_symmetry_keeps_all_ten_objects(transforms):
    _, preprocess_val = transforms
    augment = CountPreservingAugment(preprocess_val, "dihedral")
    for scene in _scenes(4):
        image = render_scene(scene, SIZE)
        assert _red_objects(preprocess_val(image)) == 10  # the counter itself is right
        for seed in range(16):
            torch.manual_seed(seed)
            assert _red_objects(augment(image)) == 10, (scene, seed)


def test_open_clip_crop_keeps_every_object_of_a_ten_image(transforms):
    """The default transform is count-safe in the synthetic world: the renderer's border margin
    is wider than anything open_clip's crop (area >= 0.9) cuts away."""
    preprocess_train, _ = transforms
    for k, scene in enumerate(_scenes(20)):
        image = render_scene(scene, SIZE)
        for seed in range(10):
            torch.manual_seed(100 * k + seed)
            assert _red_objects(preprocess_train(image)) == 10, (scene, seed)


def test_symmetries_are_drawn_from_the_seeded_global_generator(transforms):
    _, preprocess_val = transforms
    image = render_scene(Scene(7, 3, "heart", "blue"), SIZE)
    for mode, expected in (("flip", 2), ("dihedral", 8)):
        augment = CountPreservingAugment(preprocess_val, mode)
        outputs = []
        for seed in range(64):
            torch.manual_seed(seed)
            outputs.append(augment(image))
        torch.manual_seed(5)
        assert torch.equal(augment(image), outputs[5])  # same seed, same pose
        distinct = {o.numpy().tobytes() for o in outputs}
        assert len(distinct) == expected, mode


def test_flip_is_a_mirror_of_the_whole_image(transforms):
    _, preprocess_val = transforms
    image = render_scene(Scene(9, 4, "star", "green"), SIZE)
    plain = preprocess_val(image)
    augment = CountPreservingAugment(preprocess_val, "flip")
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        out = augment(image)
        if torch.equal(out, plain):
            seen.add("identity")
        else:
            assert torch.allclose(out, plain.flip(-1), atol=1e-6)
            seen.add("mirror")
    assert seen == {"identity", "mirror"}


def test_training_transform_choice(transforms):
    preprocess_train, preprocess_val = transforms
    assert training_transform("open_clip", preprocess_train, preprocess_val) is preprocess_train
    chosen = training_transform("dihedral", preprocess_train, preprocess_val)
    assert isinstance(chosen, CountPreservingAugment) and chosen.whole_image is preprocess_val
    with pytest.raises(ValueError, match=r"train\.augment"):
        CountPreservingAugment(preprocess_val, "rotate")  # type: ignore[arg-type]


def test_config_rejects_an_unknown_augment():
    assert TrainConfig().augment == "open_clip"  # the paper's transform unless asked
    with pytest.raises(ValidationError, match="augment"):
        TrainConfig(augment="mixup")
