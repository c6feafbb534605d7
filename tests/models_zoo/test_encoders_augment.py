import numpy as np
import pytest
import torch

from models_zoo import encoders
from models_zoo.augment import AugmentConfig, augment


def test_adapt_grey_to_colour_and_resize():
    x = np.full((2, 10, 20), 100, np.uint8)
    out = encoders.adapt_images(x, channels=3, size=16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.uint8
    assert (out == 100).all()


def test_adapt_colour_to_grey_uses_luma_and_drops_alpha():
    x = np.zeros((1, 4, 4, 4), np.uint8)
    x[..., 0] = 255  # pure red, alpha 0
    out = encoders.adapt_images(x, channels=1, size=4)
    assert out.shape == (1, 1, 4, 4)
    assert int(out[0, 0, 0, 0]) == round(0.299 * 255)


def test_input_spec_clamps_size():
    assert encoders.input_spec(np.zeros((1, 8, 8), np.uint8)) == (1, 16)
    assert encoders.input_spec(np.zeros((1, 200, 100, 3), np.uint8)) == (3, 64)
    assert encoders.input_spec(np.zeros((1, 200, 100, 3), np.uint8), "resnet") == (3, 128)
    with pytest.raises(ValueError):
        encoders.image_channels(np.zeros((1, 4, 4, 2), np.uint8))


@pytest.mark.parametrize("name,size", [("cnn", 28), ("resnet", 32)])
def test_encoders_embed_any_size(name, size):
    cfg = encoders.EncoderConfig(
        name=name, width=8, in_channels=3, image_size=size, mean=[0.5] * 3, std=[0.2] * 3
    )
    enc = encoders.build(cfg).eval()
    out = enc(torch.rand(2, 3, size, size))
    assert out.shape == (2, enc.out_dim)


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_per_image_randomness_and_range(channels):
    x = torch.rand(1, channels, 16, 16).expand(8, -1, -1, -1).contiguous()
    g = torch.Generator().manual_seed(0)
    y = augment(x, AugmentConfig(), g)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1
    # the same input image gets a different view in every slot of the batch
    flat = y.reshape(8, -1)
    assert torch.cdist(flat, flat).fill_diagonal_(1).min() > 1e-4


def test_augment_is_reproducible_from_the_generator():
    x = torch.rand(4, 3, 32, 32)
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(3))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_an_artifact_naming_an_encoder_too_large_is_refused_before_it_is_built(tmp_path):
    # A security review: a checkpoint of a few bytes set width 1024 (1.6 GB when built) or more, and
    # the worker building it from an upload was killed for memory on every delivery.
    import pytest
    import torch

    from models_zoo.artifact import FORMAT, EncoderArtifact

    for config, says in (
        ({"width": 4096, "depth": 6}, "over the limit"),
        ({"image_size": 100_000}, "image_size"),
        ({"in_channels": 5}, "in_channels"),
        ({"name": "nope"}, "cannot build"),
        ({"width": "16"}, "whole number"),
        ({"colour": True}, "not one this library writes"),
    ):
        path = tmp_path / "bomb.pt"
        torch.save({"format": FORMAT, "config": config, "state_dict": {}, "metadata": {}}, path)
        with pytest.raises(ValueError, match=says):
            EncoderArtifact.load(path)
