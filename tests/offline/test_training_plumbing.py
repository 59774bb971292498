import pytest
import torch

from rhythmicnet.errors import WeightsError
from rhythmicnet.models.weights import load_into, load_state_dict, strip_prefixes
from rhythmicnet.offline.training import load_checkpoint, pick_device, resume, save_checkpoint, seed_everything


def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))


def test_checkpoint_resume_continues_the_same_run(tmp_path):
    seed_everything(0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(16, 3)

    def train_step():
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    for _ in range(3):
        train_step()
    save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, step=3, epoch=1, config={"w": 4})
    noise_after = torch.randn(2)
    expected = [train_step() for _ in range(3)]

    model2 = _model()
    opt = torch.optim.Adam(model2.parameters(), lr=1e-2)
    model = model2
    step, epoch = resume(tmp_path / "ck.pt", model2, opt)
    assert (step, epoch) == (3, 1)
    assert torch.equal(torch.randn(2), noise_after)  # RNG state restored too
    assert [train_step() for _ in range(3)] == pytest.approx(expected, rel=1e-6)
    assert not list(tmp_path.glob(".*part*"))


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "drums.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="drums.pt: corrupt"):
        load_checkpoint(bad)
    with pytest.raises(WeightsError, match="drums.pt: corrupt"):
        load_state_dict(bad)
    with pytest.raises(WeightsError, match="nothing.pt: .*not found"):
        load_state_dict(tmp_path / "nothing.pt")


def test_load_into_checks_keys_and_shapes(tmp_path):
    m = _model()
    torch.save({"_orig_mod." + k: v for k, v in m.state_dict().items()}, tmp_path / "w.pt")
    m2 = _model()
    load_into(m2, tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True))
    other = torch.nn.Sequential(torch.nn.Linear(3, 5))
    with pytest.raises(WeightsError, match="do not fit"):
        load_into(other, tmp_path / "w.pt")
    assert strip_prefixes({"module.a": 1}) == {"a": 1}


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        pick_device("tpu")
