"""Beat network: config, ablation shapes, adjacency, relative attention and SSM maths, causality,
cached streaming == offline, masks, loss, a tiny training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rhythmicnet.models.beat_net import (
    ABLATION_ROWS,
    BEAT_POS_WEIGHT,
    DOWNBEAT_POS_WEIGHT,
    BeatNet,
    BeatNetConfig,
    BeatNetOutput,
    BeatNetStream,
    GraphConv,
    _RelativeAttention,
    _SelfSimilarity,
    ablation_config,
    align_output,
    beat_loss,
    delay_targets,
)
from rhythmicnet.models.skeleton import NUM_JOINTS, adjacency, spatial_partition

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = dict(stgcn_channels=(8, 8, 12, 12), temporal_kernel=3, d_model=16, n_heads=2, d_ff=32, rel_clip=6,
             ssm_kernel=3, window=12)


def small_config(row: str = "full", **overrides: object) -> BeatNetConfig:
    return ablation_config(row, **{**SMALL, **overrides})


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial batch-norm statistics and affine weights, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def make_model(row: str = "full", seed: int = 0, **overrides: object) -> BeatNet:
    torch.manual_seed(seed)
    model = BeatNet(small_config(row, **overrides))
    return randomise_norms(model, seed).eval()  # type: ignore[return-value]


def features(b: int, t: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, NUM_JOINTS, 5, generator=g)


# ------------------------------------------------------------------------------------------ config
def test_config_round_trip_unknown_keys_and_validation() -> None:
    cfg = small_config(causal=True)
    assert BeatNetConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(cfg.to_dict()["stgcn_channels"], list)  # JSON-friendly, back to a tuple on load
    with pytest.raises(ValueError, match="unknown BeatNetConfig keys"):
        BeatNetConfig.from_dict({**cfg.to_dict(), "n_layer": 3})
    with pytest.raises(ValueError, match="multiple of n_heads"):
        BeatNetConfig(d_model=15)
    with pytest.raises(ValueError, match="odd"):
        BeatNetConfig(ssm_kernel=4)
    with pytest.raises(ValueError, match="need use_transformer"):
        BeatNetConfig(use_transformer=False)
    with pytest.raises(ValueError, match="unknown ablation row"):
        ablation_config("stgcn_tf_rel")
    with pytest.raises(ValueError, match="fixed by the ablation row"):
        ablation_config("tf", use_ssm=True)
    with pytest.raises(ValueError, match="for the causal model"):
        BeatNetConfig(output_delay=3)
    with pytest.raises(ValueError, match="output_delay must be an int >= 0"):
        BeatNetConfig(causal=True, output_delay=-1)
    assert BeatNetConfig.from_dict({**cfg.to_dict(), "output_delay": 6}).output_delay == 6


def test_delayed_targets_and_realigned_outputs_are_inverse() -> None:
    """A model with output_delay d is trained on targets moved d frames later and read with its outputs moved
    d frames earlier: the two moves cancel on every frame both define, and the clip's last d frames, which no
    output scored, read 0."""
    x = np.arange(1.0, 11.0)
    assert np.array_equal(delay_targets(x, 0), x) and np.array_equal(align_output(x, 0), x)
    moved = delay_targets(x, 3)
    assert np.array_equal(moved, [0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    back = align_output(moved, 3)
    assert np.array_equal(back[:7], x[:7]) and np.array_equal(back[7:], [0, 0, 0])


def test_default_model_size_and_paper_structure() -> None:
    cfg = BeatNetConfig()
    assert len(cfg.stgcn_channels) == 10 and (cfg.n_layers, cfg.n_heads) == (2, 2)
    assert cfg.rel_clip >= 64 and 150 <= cfg.window <= 240
    model = BeatNet(cfg)
    assert 200_000 <= model.num_parameters() <= 600_000
    out = model.eval()(features(1, 20))
    assert out.beat_logits.shape == (1, 20)


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("row", sorted(ABLATION_ROWS))
def test_ablation_rows_shapes_and_components(row: str, causal: bool) -> None:
    model = BeatNet(small_config(row, causal=causal))
    sw = ABLATION_ROWS[row]
    assert (len(model.blocks) > 0) == sw["use_stgcn"]
    assert (len(model.layers) > 0) == sw["use_transformer"]
    assert (model.ssm is not None) == sw["use_ssm"]
    if sw["use_transformer"]:
        attn = model.layers[0].attn  # type: ignore[union-attr]
        assert (attn.rel_key is not None) == sw["use_rel_attn"]
    model.train()
    out = model(features(3, 30))
    assert isinstance(out, BeatNetOutput)
    assert out.beat_logits.shape == (3, 30) and out.downbeat_logits.shape == (3, 30)
    assert torch.isfinite(out.beat_logits).all() and torch.isfinite(out.downbeat_logits).all()
    out.beat_logits.sum().backward()  # every row trains


def test_bad_input_shapes_raise() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(1, 10, 17, 4))
    with pytest.raises(ValueError, match="no frames"):
        model(torch.zeros(1, 0, 17, 5))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.zeros(1, 10, 17, 5), torch.ones(1, 9, dtype=torch.bool))


# --------------------------------------------------------------------------------------- adjacency
def test_adjacency_buffer_is_the_spatial_partition() -> None:
    model = BeatNet(small_config())
    np.testing.assert_array_equal(model.adjacency.numpy(), spatial_partition())
    assert "adjacency" in model.state_dict()  # saved with the weights
    assert all(torch.equal(b.edge_importance, torch.ones(3, 17, 17)) for b in model.blocks)  # type: ignore[union-attr]


def test_graph_conv_with_identity_weights_averages_neighbours() -> None:
    a = torch.from_numpy(spatial_partition())  # (3, V, V)
    conv = GraphConv(1, 1, 3)
    x = torch.randn(2, 4, NUM_JOINTS, 1)  # (B, T, V, C)
    with torch.no_grad():
        conv.linear.weight.fill_(1.0)  # identity on every partition: sum_k x A_k
        conv.linear.bias.zero_()
        out = conv(x, a)[..., 0]  # (B, T, V)
    adj = adjacency() + np.eye(NUM_JOINTS)
    x_np = x[..., 0].numpy()
    for i in range(NUM_JOINTS):
        hood = np.flatnonzero(adj[:, i])  # i and its neighbours
        np.testing.assert_allclose(out[..., i].numpy(), x_np[..., hood].mean(-1), rtol=1e-5, atol=1e-6)
    # one partition at a time: out[i] = sum_j x[j] A[k, j, i]  (source j into output i)
    for k in range(3):
        with torch.no_grad():
            conv.linear.weight.zero_()
            conv.linear.weight[0, k] = 1.0
            out = conv(x, a)[..., 0]
        np.testing.assert_allclose(out.numpy(), x_np @ a[k].numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- relative attention
def shaw_loop(attn: _RelativeAttention, x: torch.Tensor, allowed: torch.Tensor, clip: int,
              bias: torch.Tensor | None) -> torch.Tensor:
    """Shaw et al. 2018, eqs. (3)-(4) written as loops, plus the additive bias inside the 1/sqrt(d) scaling."""
    b, t, d = x.shape
    h, dh = attn.n_heads, attn.head_dim
    qkv = attn.qkv(x)
    q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
    assert attn.rel_key is not None and attn.rel_value is not None
    out = torch.zeros(b, t, d)
    for n in range(b):
        for hh in range(h):
            cols = slice(hh * dh, (hh + 1) * dh)
            for i in range(t):
                e = torch.full((t,), -math.inf)
                for j in range(t):
                    if not allowed[n if allowed.shape[0] > 1 else 0, 0, i, j]:
                        continue
                    dist = max(-clip, min(clip, j - i)) + clip
                    score = q[n, i, cols] @ (k[n, j, cols] + attn.rel_key[dist])
                    if bias is not None:
                        score = score + bias[n, 0, i, j]
                    e[j] = score / math.sqrt(dh)
                alpha = torch.softmax(e, 0)
                z = torch.zeros(dh)
                for j in range(t):
                    if alpha[j] > 0:
                        dist = max(-clip, min(clip, j - i)) + clip
                        z = z + alpha[j] * (v[n, j, cols] + attn.rel_value[dist])
                out[n, i, cols] = z
    return attn.out_proj(out)


@pytest.mark.parametrize("causal", [False, True])
def test_relative_attention_matches_shaw_loop(causal: bool) -> None:
    torch.manual_seed(0)
    cfg = small_config(causal=causal, d_model=8, rel_clip=2, window=4)
    model = BeatNet(cfg)
    attn = model.layers[0].attn  # type: ignore[union-attr]
    with torch.no_grad():
        attn.rel_key.normal_()  # type: ignore[union-attr]
        attn.rel_value.normal_()  # type: ignore[union-attr]
    t = 7
    x = torch.randn(2, t, 8)
    allowed = model._allowed(t, None, x.device)
    bias = torch.randn(2, 1, t, t)
    i = torch.arange(t)
    rel_index = (i.view(1, -1) - i.view(-1, 1)).clamp(-2, 2) + 2
    with torch.no_grad():
        fast = attn(x, allowed, rel_index, bias)
        slow = shaw_loop(attn, x, allowed, 2, bias)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_relative_attention_hand_checked() -> None:
    """One head of size 1, q = 1, k = 0: the logits are the clipped-distance keys alone."""
    cfg = small_config(d_model=1, n_heads=1, rel_clip=1)
    attn = _RelativeAttention(cfg)
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # q = 1, k = 0, v = 0
        attn.rel_key.copy_(torch.tensor([[0.0], [0.0], [math.log(2.0)]]))  # type: ignore[union-attr]  # d = -1, 0, +1
        attn.rel_value.copy_(torch.tensor([[10.0], [20.0], [30.0]]))  # type: ignore[union-attr]
        attn.out_proj.weight.fill_(1.0)
        attn.out_proj.bias.zero_()
        t = 3
        allowed = torch.ones(1, 1, t, t, dtype=torch.bool)
        i = torch.arange(t)
        rel_index = (i.view(1, -1) - i.view(-1, 1)).clamp(-1, 1) + 1
        out = attn(torch.zeros(1, t, 1), allowed, rel_index, None)[0, :, 0]
    # frame 0 sees distances 0, +1, +2 -> clipped 0, +1, +1: weights 1:2:2, values 20, 30, 30
    # frame 1 sees -1, 0, +1: weights 1:1:2, values 10, 20, 30; frame 2 sees -1, -1, 0: equal, 10, 10, 20
    expected = torch.tensor([0.2 * 20 + 0.8 * 30, 0.25 * 10 + 0.25 * 20 + 0.5 * 30, (10 + 10 + 20) / 3])
    torch.testing.assert_close(out, expected)


# ------------------------------------------------------------------------------------------- SSM
def ssm_reference(z: np.ndarray, allowed: np.ndarray, gamma: float) -> np.ndarray:
    """S_ij = n_i softmax_j(-gamma ||z_i - z_j||^2 / D) over the allowed j of row i, 0 elsewhere."""
    t, d = z.shape
    s = np.zeros((t, t))
    for i in range(t):
        js = np.flatnonzero(allowed[i])
        logits = np.array([-gamma * np.sum((z[i] - z[j]) ** 2) / d for j in js])
        w = np.exp(logits - logits.max())
        s[i, js] = len(js) * w / w.sum()
    return s


def conv_reference(s: np.ndarray, w: np.ndarray, causal: bool) -> np.ndarray:
    """S-hat_ij = sum_ab w[a, b] S[i - off + a, j - off + b], zero outside; off = k - 1 causal, (k - 1) / 2 else."""
    k = w.shape[0]
    off = k - 1 if causal else (k - 1) // 2
    t = s.shape[0]
    out = np.zeros_like(s)
    for i in range(t):
        for j in range(t):
            for a in range(k):
                for b in range(k):
                    r, c = i - off + a, j - off + b
                    if 0 <= r < t and 0 <= c < t:
                        out[i, j] += w[a, b] * s[r, c]
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_self_similarity_softmax_axis_window_and_conv(causal: bool) -> None:
    torch.manual_seed(0)
    model = BeatNet(small_config(causal=causal, window=4, ssm_kernel=3))
    ssm = model.ssm
    assert isinstance(ssm, _SelfSimilarity)
    with torch.no_grad():
        ssm.log_gamma.fill_(math.log(0.7))
    t = 9
    vectors = torch.randn(1, t, 16)
    allowed = model._allowed(t, None, vectors.device)
    z = nn.functional.layer_norm(vectors, (16,))[0].numpy()
    allowed_np = allowed[0, 0].numpy()
    if causal:  # j <= i and i - j < W
        i, j = np.indices((t, t))
        np.testing.assert_array_equal(allowed_np, (j <= i) & (i - j < 4))
    s_ref = ssm_reference(z, allowed_np, 0.7)
    # rows (softmax over j, the keys) sum to the key count n_i; the columns do not
    np.testing.assert_allclose(s_ref.sum(1), allowed_np.sum(1), rtol=1e-6)
    # a delta kernel passes S through: checks the softmax axis and the masking
    centre = 2 if causal else 1
    with torch.no_grad():
        ssm.weight.zero_()
        ssm.weight[centre, centre] = 1.0
        np.testing.assert_allclose(ssm(vectors, allowed)[0, 0].numpy(), s_ref, rtol=1e-4, atol=1e-5)
        # a random kernel: the convolution and its padding (causal: past rows and columns only)
        ssm.weight.normal_()
        out = ssm(vectors, allowed)[0, 0].numpy()
    np.testing.assert_allclose(out, conv_reference(s_ref, ssm.weight.detach().numpy(), causal), rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------------------------- causality
def test_causal_model_ignores_the_future_and_the_distant_past() -> None:
    model = make_model(causal=True)
    x = features(1, 60)
    rf = model.receptive_field()
    assert rf < 50
    with torch.no_grad():
        base = model(x).beat_logits[0]
        future = x.clone()
        future[0, 30] += 1.0
        changed = model(future).beat_logits[0]
        past = x.clone()
        past[0, 0] += 1.0
        changed_past = model(past).beat_logits[0]
    assert torch.equal(changed[:30], base[:30])
    assert not torch.allclose(changed[30:], base[30:])
    assert torch.allclose(changed_past[rf + 1 :], base[rf + 1 :], atol=1e-6)  # outside the window: no effect
    assert not torch.allclose(changed_past[:5], base[:5])


def test_offline_model_is_bidirectional() -> None:
    model = make_model(causal=False)
    x = features(1, 30)
    with torch.no_grad():
        base = model(x).beat_logits[0]
        x[0, 25] += 1.0
        changed = model(x).beat_logits[0]
    assert not torch.allclose(changed[:25], base[:25])


def test_padding_mask_equals_the_unpadded_sequence() -> None:
    for causal in (False, True):
        model = make_model(causal=causal)
        x = features(2, 30)
        mask = torch.ones(2, 30, dtype=torch.bool)
        mask[1, 20:] = False
        with torch.no_grad():
            padded = model(x, mask)
            alone = model(x[1:, :20])
        torch.testing.assert_close(padded.beat_logits[1, :20], alone.beat_logits[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(padded.downbeat_logits[1, :20], alone.downbeat_logits[0], rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("row", sorted(ABLATION_ROWS))
def test_online_equals_offline_past_the_window(row: str) -> None:
    model = make_model(row, causal=True)
    t = 70  # window 12: the attention window slides for 58 frames
    x = features(1, t)[0].numpy()
    stream = BeatNetStream(model, max_frames_per_pass=16)  # offline in overlapping pieces
    assert model.receptive_field() + 16 < t  # so some pieces start after frame 0
    offline = stream.process_offline(x)
    with torch.no_grad():
        whole = torch.sigmoid(model(torch.from_numpy(x)[None]).beat_logits[0]).numpy()
    np.testing.assert_allclose(offline.beat, whole, atol=1e-6)  # pieces == one pass
    stream.reset()
    online = [stream.process_online(frame) for frame in x]
    beat = np.concatenate([o.beat for o in online])
    downbeat = np.concatenate([o.downbeat for o in online])
    np.testing.assert_allclose(beat, offline.beat, atol=1e-5)
    np.testing.assert_allclose(downbeat, offline.downbeat, atol=1e-5)
    # chunks of several frames after a reset: the same again
    stream.reset()
    chunks = np.concatenate([stream.process_online(x[a : a + 10]).beat for a in range(0, t, 10)])
    np.testing.assert_allclose(chunks, offline.beat, atol=1e-5)
    # a second pass without reset carries the state and differs
    again = stream.process_online(x[:20]).beat
    assert np.abs(again - offline.beat[:20]).max() > 1e-4


def test_stream_state_is_explicit_and_not_mutated() -> None:
    model = make_model(causal=True)
    state = model.init_state()
    cfg = model.config
    assert state.conv_buffer.shape == (1, cfg.temporal_kernel - 1, NUM_JOINTS, sum(cfg.stgcn_channels))
    assert state.keys.shape == (cfg.n_layers, 1, cfg.n_heads, cfg.window, cfg.head_dim)
    assert state.ssm_vectors.shape == (1, cfg.window, cfg.d_model)
    assert state.ssm_rows.shape == (1, cfg.ssm_kernel - 1, cfg.window + cfg.ssm_kernel - 1)
    before = [f.clone() for f in (state.conv_buffer, state.keys, state.ssm_rows)]
    with torch.no_grad():
        out, new = model.step(features(1, 1)[:, 0], state)
    assert out.beat_logits.shape == (1,) and int(new.length) == 1 and int(state.length) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, (state.conv_buffer, state.keys, state.ssm_rows), strict=True))
    with pytest.raises(AttributeError):
        state.length = new.length  # type: ignore[misc]  # frozen


def test_stream_needs_a_causal_model_in_eval_mode() -> None:
    with pytest.raises(ValueError, match="causal"):
        BeatNetStream(make_model(causal=False))
    stream = BeatNetStream(make_model(causal=True).train())
    with pytest.raises(RuntimeError, match="eval"):
        stream.process_online(np.zeros((17, 5), np.float32))
    stream.model.eval()
    with pytest.raises(ValueError, match="features must be"):
        stream.process_online(np.zeros((3, 17, 4), np.float32))
    assert stream.process_online(np.zeros((0, 17, 5), np.float32)).beat.shape == (0,)


# ------------------------------------------------------------------------------------------- loss
def test_weighted_bce_matches_the_formula() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 12, generator=g)
    down_logits = torch.randn(2, 12, generator=g)
    beats = (torch.rand(2, 12, generator=g) < 0.3).float()
    downs = (torch.rand(2, 12, generator=g) < 0.1).float()
    out = BeatNetOutput(logits, down_logits)

    def manual(lg: torch.Tensor, y: torch.Tensor, w: float, m: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(lg)
        per = -(w * y * torch.log(p) + (1 - y) * torch.log(1 - p))
        return (per * m).sum() / m.sum()

    ones = torch.ones(2, 12)
    loss = beat_loss(out, beats, downs)
    torch.testing.assert_close(loss.beat, manual(logits, beats, BEAT_POS_WEIGHT, ones))
    torch.testing.assert_close(loss.downbeat, manual(down_logits, downs, DOWNBEAT_POS_WEIGHT, ones))
    torch.testing.assert_close(loss.total, loss.beat + loss.downbeat)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    m = mask.float()
    balanced = beat_loss(out, beats, downs, mask, beat_pos_weight="balanced", downbeat_weight=0.5)
    w = float(((1 - beats) * m).sum() / (beats * m).sum())
    torch.testing.assert_close(balanced.beat, manual(logits, beats, w, m))
    torch.testing.assert_close(balanced.total, balanced.beat + 0.5 * balanced.downbeat)
    with pytest.raises(ValueError, match="pos_weight"):
        beat_loss(out, beats, downs, beat_pos_weight=0.0)
    with pytest.raises(ValueError, match="targets must match"):
        beat_loss(out, beats[:, :5], downs)


# --------------------------------------------------------------------------------------- training
def periodic_batch(b: int, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every joint bounces (a velocity spike) on the beats (period 8 frames, random phase); 4/4 bars."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, NUM_JOINTS, 5, generator=g) * 0.3
    beats = torch.zeros(b, t)
    downs = torch.zeros(b, t)
    for n in range(b):
        phase = int(torch.randint(0, 32, (1,), generator=g))
        for k, f in enumerate(range(phase % 8, t, 8)):
            x[n, f, :, 1] += 2.0
            beats[n, f] = 1.0
            if (k + phase // 8) % 4 == 0:
                x[n, f, :, 1] += 1.0  # accent on the downbeat
                downs[n, f] = 1.0
    return x, beats, downs


@pytest.mark.parametrize("causal", [False, True])
def test_tiny_training_run_reduces_the_loss(causal: bool) -> None:
    torch.manual_seed(0)
    model = BeatNet(small_config(causal=causal, dropout=0.0)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, beats, downs = periodic_batch(8, 48, seed=0)
    losses = []
    for _ in range(30):
        loss = beat_loss(model(x), beats, downs).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
