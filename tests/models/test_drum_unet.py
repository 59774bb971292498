"""Drum U-Net: shapes, output ranges, loss helper, config, a tiny training run."""

from __future__ import annotations

import pytest
import torch

from rhythmicnet.models.drum_unet import DrumUNet, DrumUNetConfig, unet_loss


@pytest.fixture(scope="module")
def unet() -> DrumUNet:
    torch.manual_seed(0)
    return DrumUNet().eval()


def random_hits(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 9, t, generator=g) < 0.2).float()


def test_paper_channels_and_parameter_count(unet: DrumUNet) -> None:
    cfg = unet.config
    assert cfg.channels == (16, 32, 64, 128) and cfg.time_multiple == 16
    assert [block.conv2.out_channels for block in unet.down] == [16, 32, 64, 128]
    assert unet.num_parameters() == 1_233_778


@pytest.mark.parametrize("steps", [16, 32, 64])
def test_shapes(unet: DrumUNet, steps: int) -> None:
    v, o = unet(random_hits(3, steps))
    assert v.shape == (3, 9, steps) and o.shape == (3, 9, steps)


def test_input_dtypes_and_bad_shapes(unet: DrumUNet) -> None:
    hits = random_hits(2, 32)
    ref = unet(hits)
    for other in (hits.bool(), hits.long()):
        for a, b in zip(unet(other), ref, strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="multiple of 16"):
        unet(random_hits(2, 24))
    with pytest.raises(ValueError, match="batch, 9, steps"):
        unet(torch.zeros(2, 8, 32))


def test_output_ranges_even_when_saturated() -> None:
    torch.manual_seed(1)
    model = DrumUNet().eval()
    hits = random_hits(4, 32)
    for scale in (1.0, 1e3, -1e3):
        with torch.no_grad():
            model.head.weight.fill_(0.0)
            model.head.bias.copy_(torch.tensor([scale, scale]))
            v, o = model(hits)
        assert ((v >= 0) & (v <= 1)).all()
        assert ((o >= -0.5) & (o < 0.5)).all()
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.0, 1e3]))
        _, o = model(hits)
    assert float(o.max()) == pytest.approx(0.5, abs=1e-7) and float(o.max()) < 0.5


def test_position_bias_tells_classes_and_steps_apart() -> None:
    torch.manual_seed(2)
    model = DrumUNet().eval()
    assert model.class_bias is not None and model.step_bias is not None
    with torch.no_grad():
        model.class_bias.normal_()
        model.step_bias.normal_()
    hits = torch.zeros(1, 9, 32)
    hits[0, :, :] = 1.0  # the same hit everywhere: only the learned biases can separate cells
    v, _ = model(hits)
    assert v[0, 0, 4] != v[0, 1, 4] and v[0, 4, 0] != v[0, 4, 3]
    off = DrumUNet(DrumUNetConfig(position_bias=False))
    assert off.class_bias is None and off.num_parameters() < model.num_parameters()


def test_window_does_not_depend_on_its_batch(unet: DrumUNet) -> None:
    hits = random_hits(5, 32)
    v_all, o_all = unet(hits)
    v_one, o_one = unet(hits[2:3])
    torch.testing.assert_close(v_one, v_all[2:3], rtol=0, atol=1e-6)
    torch.testing.assert_close(o_one, o_all[2:3], rtol=0, atol=1e-6)


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = DrumUNetConfig(channels=(8, 16), bottleneck_channels=32)
    data = cfg.to_dict()
    assert data["channels"] == [8, 16]
    assert DrumUNetConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown DrumUNetConfig keys"):
        DrumUNetConfig.from_dict({**data, "depth": 4})
    with pytest.raises(ValueError):
        DrumUNetConfig(channels=())
    with pytest.raises(ValueError):
        DrumUNetConfig(channels=(16, 0))
    assert DrumUNet(cfg)(random_hits(1, 4))[0].shape == (1, 9, 4)


def test_unet_loss_all_cells_and_hit_cells() -> None:
    g = torch.Generator().manual_seed(0)
    hits = random_hits(2, 16)
    tv, to = torch.rand(2, 9, 16, generator=g) * hits, (torch.rand(2, 9, 16, generator=g) - 0.5) * hits
    pv, po = torch.rand(2, 9, 16, generator=g), torch.rand(2, 9, 16, generator=g) - 0.5
    m = hits.bool()
    hit = unet_loss(pv, po, tv, to, hits, hit_cells_only=True)
    torch.testing.assert_close(hit.mse_velocity, ((pv - tv)[m] ** 2).mean())
    torch.testing.assert_close(hit.mse_offset, ((po - to)[m] ** 2).mean())
    torch.testing.assert_close(hit.loss, hit.mse_velocity + hit.mse_offset)
    every = unet_loss(pv, po, tv, to, hits, hit_cells_only=False)
    torch.testing.assert_close(every.mse_velocity, ((pv - tv) ** 2).mean())
    empty = unet_loss(pv, po, tv, to, torch.zeros_like(hits), hit_cells_only=True)
    assert float(empty.loss) == 0.0
    with pytest.raises(ValueError, match="target_o"):
        unet_loss(pv, po, tv, to[:, :, :8], hits, hit_cells_only=True)


def test_a_few_training_steps_reduce_the_loss() -> None:
    """A real but tiny training run: velocity depends on class and beat position, offset on class."""
    torch.manual_seed(0)
    model = DrumUNet()
    hits = random_hits(16, 32, seed=3)
    cls = torch.linspace(0.2, 0.9, 9).view(1, 9, 1)
    beat = (torch.arange(32) % 4 == 0).float().view(1, 1, 32)
    target_v = (cls * (0.7 + 0.3 * beat)).expand_as(hits) * hits
    target_o = (torch.linspace(-0.3, 0.3, 9).view(1, 9, 1)).expand_as(hits) * hits
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        v, o = model(hits)
        loss = unet_loss(v, o, target_v, target_o, hits, hit_cells_only=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
