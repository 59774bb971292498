"""TCN baseline: config, shapes, receptive field and causality, masks, a tiny training run."""

from __future__ import annotations

import pytest
import torch

from rhythmicnet.models.beat_net import BeatNetOutput, beat_loss
from rhythmicnet.models.tcn_beat import TCNBeat, TCNBeatConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_config_round_trip_and_validation() -> None:
    cfg = TCNBeatConfig(causal=True)
    assert TCNBeatConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TCNBeatConfig keys"):
        TCNBeatConfig.from_dict({"layers": 3})
    with pytest.raises(ValueError, match="odd"):
        TCNBeatConfig(kernel_size=4)
    assert TCNBeatConfig().receptive_field == 253
    assert 20_000 < TCNBeat(TCNBeatConfig()).num_parameters() < 100_000


@pytest.mark.parametrize("causal", [False, True])
def test_shapes_and_receptive_field(causal: bool) -> None:
    torch.manual_seed(0)
    cfg = TCNBeatConfig(channels=8, n_layers=3, kernel_size=3, causal=causal)  # receptive field 15
    model = TCNBeat(cfg).eval()
    x = torch.randn(2, 40, 17, 5)
    with torch.no_grad():
        out = model(x)
        assert isinstance(out, BeatNetOutput) and out.beat_logits.shape == (2, 40)
        assert out.downbeat_logits.shape == (2, 40)
        y = x.clone()
        y[:, 20] += 1.0
        changed = model(y).beat_logits
    diff = (changed - out.beat_logits).abs()[0] > 0
    rf = cfg.receptive_field
    if causal:  # frames 20 .. 20 + rf - 1 see frame 20, nothing before
        assert not diff[:20].any() and diff[20 : 20 + rf].all() and not diff[20 + rf :].any()
    else:  # centred: 20 - rf // 2 .. 20 + rf // 2
        assert diff[20 - rf // 2 : 20 + rf // 2 + 1].all() and not diff[: 20 - rf // 2].any()


def test_mask_equals_unpadded() -> None:
    torch.manual_seed(0)
    model = TCNBeat(TCNBeatConfig(channels=8, n_layers=3)).eval()
    x = torch.randn(2, 30, 17, 5)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 22:] = False
    with torch.no_grad():
        padded = model(x, mask).beat_logits[1, :22]
        alone = model(x[1:, :22]).beat_logits[0]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_tiny_training_run_reduces_the_loss() -> None:
    torch.manual_seed(0)
    model = TCNBeat(TCNBeatConfig(channels=16, n_layers=3, dropout=0.0, causal=True)).train()
    x = torch.randn(8, 48, 17, 5) * 0.3
    beats = torch.zeros(8, 48)
    beats[:, ::8] = 1.0
    x[:, ::8, :, 1] += 2.0
    downs = torch.zeros(8, 48)
    downs[:, ::32] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = beat_loss(model(x), beats, downs).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
