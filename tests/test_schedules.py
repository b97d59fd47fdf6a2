"""Learning-rate schedules: hand-derived values, monotonicity and floor, torch's scheduler
semantics, state round trips, and the Go guide's cosine bug."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite import optim
from tensorlite.faults import go_guide_lr
from tensorlite.optim.lr_scheduler import LambdaLR, WarmupCosine
from tensorlite.optim.schedules import constant_lr, warmup_cosine_lr


def test_constant_lr():
    assert [constant_lr(s, 3e-4) for s in (0, 1, 10**6)] == [3e-4] * 3
    with pytest.raises(ValueError, match="step must be >= 0"):
        constant_lr(-1, 1.0)


def test_warmup_cosine_hand_derived_values():
    kw = dict(lr_max=1.0, warmup_steps=4, total_steps=12, lr_min=0.1)
    got = [warmup_cosine_lr(s, **kw) for s in range(16)]
    warm = [0.25, 0.5, 0.75, 1.0]
    # 8 decay steps: lr = 0.1 + 0.9 * (1 + cos(pi * k / 8)) / 2 at step 4 + k
    decay = [0.1 + 0.9 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(9)]
    expected = warm + decay + [0.1] * 3
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    assert got[4] == 1.0 and got[8] == pytest.approx(0.55) and got[12] == 0.1


def test_warmup_zero_starts_at_lr_max():
    got = [warmup_cosine_lr(s, lr_max=2.0, warmup_steps=0, total_steps=4) for s in range(6)]
    np.testing.assert_allclose(got, [2.0, 2.0 * (1 + math.cos(math.pi / 4)) / 2, 1.0,
                                     2.0 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0, 0.0], atol=1e-15)


def test_warmup_equal_to_total():
    got = [warmup_cosine_lr(s, lr_max=1.0, warmup_steps=2, total_steps=2, lr_min=0.2) for s in range(4)]
    assert got == [0.5, 1.0, 0.2, 0.2]


@settings(max_examples=60, deadline=None)
@given(
    lr_max=st.floats(1e-6, 10.0),
    frac_min=st.floats(0.0, 1.0),
    warmup=st.integers(0, 50),
    decay=st.integers(0, 300),
)
@example(lr_max=3.266302972279831, frac_min=0.375, warmup=0, decay=1)  # lr_min + (lr_max - lr_min) rounds up
@example(lr_max=3.266302972279831, frac_min=0.0, warmup=7, decay=3)
def test_warmup_cosine_properties(lr_max, frac_min, warmup, decay):
    lr_min = lr_max * frac_min
    total = warmup + decay
    lrs = [warmup_cosine_lr(s, lr_max=lr_max, warmup_steps=warmup, total_steps=total, lr_min=lr_min)
           for s in range(total + 20)]
    assert all(lr_min <= lr <= lr_max for lr in lrs[warmup:])
    after = lrs[warmup:]
    assert all(b <= a for a, b in zip(after, after[1:])), "must be non-increasing after warmup"
    if warmup:
        assert lrs[0] == pytest.approx(lr_max / warmup) and lrs[warmup - 1] == lr_max
        assert all(b > a for a, b in zip(lrs[:warmup], lrs[1:warmup]))
    assert lrs[-1] == lr_min


def test_warmup_cosine_errors():
    with pytest.raises(ValueError, match=r"total_steps \(5\) must be >= warmup_steps \(10\)"):
        warmup_cosine_lr(0, lr_max=1.0, warmup_steps=10, total_steps=5)
    with pytest.raises(ValueError, match=r"lr_min \(2.0\) must be <= lr_max \(1.0\)"):
        warmup_cosine_lr(0, lr_max=1.0, warmup_steps=0, total_steps=5, lr_min=2.0)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        warmup_cosine_lr(0, lr_max=1.0, warmup_steps=-1, total_steps=5)


def test_go_guide_schedule_oscillates_and_ours_does_not():
    go = [go_guide_lr(c, base_lr=3e-4, warmup_steps=500) for c in range(10_000)]
    ours = [warmup_cosine_lr(s, lr_max=3e-4, warmup_steps=500, total_steps=10_000) for s in range(10_000)]
    # The Go progress (step - 500) / 1000 passes 1 at step 1500: the LR climbs back to the peak.
    assert go[1499] == pytest.approx(0.0, abs=1e-12) and go[2499] == pytest.approx(3e-4)
    assert sum(b > a for a, b in zip(go[500:], go[501:])) > 4000
    assert all(b <= a for a, b in zip(ours[500:], ours[501:]))


def _opt(lrs=(0.1, 0.01)):
    p, q = tl.zeros(2, requires_grad=True), tl.zeros(3, requires_grad=True)
    return optim.SGD([{"params": [p], "lr": lrs[0]}, {"params": [q], "lr": lrs[1]}], lr=1.0)


def _torch_opt(lrs=(0.1, 0.01)):
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    return torch.optim.SGD([{"params": [p], "lr": lrs[0]}, {"params": [q], "lr": lrs[1]}], lr=1.0)


@pytest.mark.parametrize("per_group", [False, True])
def test_lambda_lr_matches_torch(per_group):
    f1 = lambda s: 0.95**s
    f2 = lambda s: 1.0 / (1 + s)
    lam = [f1, f2] if per_group else f1
    opt, ref_opt = _opt(), _torch_opt()
    ours, ref = LambdaLR(opt, lam), torch.optim.lr_scheduler.LambdaLR(ref_opt, lam)
    for _ in range(30):
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-15)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in ref_opt.param_groups])
        opt.step()
        ref_opt.step()
        ours.step()
        ref.step()
    assert ours.last_epoch == ref.last_epoch == 30


def test_warmup_cosine_scheduler_drives_adamw_like_torch():
    kw = dict(warmup_steps=3, total_steps=12, lr_min=1e-3)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    p = tl.tensor(w, dtype=tl.float64, requires_grad=True)
    q = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    opt, ref_opt = optim.AdamW([p], lr=0.1, weight_decay=0.1), torch.optim.AdamW([q], lr=0.1, weight_decay=0.1)
    sched = WarmupCosine(opt, **kw)
    ref = torch.optim.lr_scheduler.LambdaLR(
        ref_opt, lambda s: warmup_cosine_lr(s, lr_max=0.1, **kw) / 0.1)
    seen = []
    for _ in range(15):
        g = rng.standard_normal((3, 4))
        p.grad, q.grad = tl.tensor(g, dtype=tl.float64), torch.tensor(g)
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        ref_opt.step()
        sched.step()
        ref.step()
    np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=1e-6)
    # The optimizer stepped with the LR of steps 0, 1, 2, ...: construction set step 0's.
    assert seen == [warmup_cosine_lr(s, lr_max=0.1, **kw) for s in range(15)]


def test_scheduler_state_dict_round_trip():
    opt = _opt()
    sched = WarmupCosine(opt, warmup_steps=5, total_steps=20, lr_min=[0.01, 0.001])
    for _ in range(7):
        opt.step()
        sched.step()
    saved_opt, saved = opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
    later = []
    for _ in range(10):
        opt.step()
        sched.step()
        later.append(sched.get_last_lr())
    opt2 = _opt((5.0, 5.0))
    opt2.load_state_dict(saved_opt)
    sched2 = WarmupCosine(opt2, warmup_steps=5, total_steps=20, lr_min=[0.01, 0.001])
    sched2.load_state_dict(saved)
    assert [g["lr"] for g in opt2.param_groups] == sched2.get_last_lr()
    resumed = []
    for _ in range(10):
        opt2.step()
        sched2.step()
        resumed.append(sched2.get_last_lr())
    assert resumed == later


def test_lambda_lr_state_dict_keeps_callable_objects_state():
    class Decay:
        def __init__(self):
            self.factor = 0.5

        def __call__(self, s):
            return self.factor**s

    opt = _opt()
    f = Decay()
    sched = LambdaLR(opt, f)
    sched.step()
    sd = sched.state_dict()
    assert sd["last_epoch"] == 1 and sd["lr_lambdas"] == [{"factor": 0.5}, {"factor": 0.5}]
    f2 = Decay()
    f2.factor = 0.1
    sched2 = LambdaLR(_opt(), f2)
    sched2.load_state_dict(sd)
    assert f2.factor == 0.5 and sched2.last_epoch == 1


def test_scheduler_errors():
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        LambdaLR(_opt(), [lambda s: 1.0])
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosine(_opt(), warmup_steps=10, total_steps=5)
    with pytest.raises(KeyError, match="initial_lr"):
        LambdaLR(_opt(), lambda s: 1.0, last_epoch=3)
