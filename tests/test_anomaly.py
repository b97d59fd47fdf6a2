"""detect_anomaly: the first op whose output (forward) or input gradient (backward) is non-finite."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import autograd, faults, nn
from tensorlite.debug import AnomalyError, detect_anomaly
from tensorlite.debug.anomaly import TensorStats

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _observers_empty():
    return not autograd._forward_observers and not autograd._backward_observers


def test_forward_nan_names_op_inputs_and_user_line():
    x = tl.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            y = x * 2.0
            y.log()  # the line the error must name
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.phase == "forward" and err.op == "Log"
    fname, lineno, src = err.location
    assert fname == __file__ and src == "y.log()  # the line the error must name"
    (stats,) = err.inputs
    assert (stats.min, stats.max, stats.has_nan, stats.has_inf) == (-4.0, 6.0, False, False)
    assert err.bad.has_nan and err.bad.n_bad == 1
    msg = str(err)
    assert msg.startswith("forward: Log produced NaN in its output (1 of 3 values)")
    assert f"{__file__}:{lineno}: y.log()" in msg
    assert "min -4, max 6, has NaN: False" in msg
    assert _observers_empty()


def test_forward_inf_from_overflow():
    x = tl.tensor([10.0, 100.0])
    with pytest.raises(AnomalyError, match=r"forward: Exp produced Inf in its output \(1 of 2 values\)"):
        with detect_anomaly():
            x.exp()


def test_backward_inf_names_the_forward_line():
    x = tl.tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            y = x.sqrt()  # finite forward (sqrt(0) = 0), infinite gradient at 0
            y.sum().backward()
    err = info.value
    assert err.phase == "backward" and err.op == "Sqrt" and err.which == 0
    assert err.location[2].startswith("y = x.sqrt()")
    assert err.bad.has_inf and not err.bad.has_nan
    assert "backward: Sqrt produced Inf in its gradient for input #0" in str(err)
    assert _observers_empty()


def test_input_nan_is_reported_in_the_input_statistics():
    x = tl.tensor([1.0, float("nan")])
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            x + 1.0
    assert info.value.inputs[0].has_nan
    assert "has NaN: True" in str(info.value)


def test_healthy_gpt_step_raises_nothing_and_matches_plain_run():
    cfg = nn.GPTConfig(vocab_size=20, seq_len=8, d_model=16, n_layers=2, n_heads=2, pos="rope")
    x = np.random.default_rng(0).integers(0, 20, size=(2, 8))
    y = np.roll(x, -1, axis=1)
    grads = []
    for anomaly in (False, True):
        tl.manual_seed(0)
        model = nn.GPT(cfg)
        if anomaly:
            with detect_anomaly():
                model.loss(x, y).backward()
        else:
            model.loss(x, y).backward()
        grads.append(model.lm_head.weight.grad.numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    assert _observers_empty()


def test_nan_inside_a_gpt_is_traced_to_rmsnorm_and_the_calling_line():
    tl.manual_seed(0)
    cfg = nn.GPTConfig(vocab_size=16, seq_len=8, d_model=16, n_layers=1, n_heads=2, norm="rmsnorm")
    model = faults.inject(nn.GPT(cfg), "rmsnorm_no_eps")
    with tl.no_grad():
        model.tok_emb.weight[0] = 0.0
        model.pos_emb.weight[...] = 0.0
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            model(tl.tensor([[0, 1, 2]]))  # calling line
    assert info.value.op == "RMSNorm"
    assert info.value.location[2] == "model(tl.tensor([[0, 1, 2]]))  # calling line"


def test_forward_check_can_be_switched_off():
    x = tl.tensor([-1.0, 4.0], requires_grad=True)
    with detect_anomaly(forward=False, backward=False):
        y = x.log()
    assert np.isnan(y.numpy()[0])
    assert _observers_empty()


def test_observers_removed_after_an_exception_and_contexts_nest():
    with pytest.raises(ValueError):
        with detect_anomaly():
            assert len(autograd._forward_observers) == 1
            with detect_anomaly():
                assert len(autograd._forward_observers) == 2
            assert len(autograd._forward_observers) == 1
            raise ValueError("user error")
    assert _observers_empty()


def test_decorator_form():
    @detect_anomaly()
    def f(t):
        return (t - 1.0).log()

    assert f.__name__ == "f"
    with pytest.raises(AnomalyError, match="Log"):
        f(tl.tensor([0.5]))
    assert _observers_empty()


def test_tensor_stats_ignore_nonfinite_in_min_max():
    s = TensorStats(np.array([1.0, np.inf, -3.0, np.nan]))
    assert (s.min, s.max, s.has_nan, s.has_inf, s.n_bad) == (-3.0, 1.0, True, True, 2)
    ints = TensorStats(np.array([3, 1, 2]))
    assert (ints.min, ints.max, ints.has_nan) == (1.0, 3.0, False)


@pytest.mark.gpu
def test_detect_anomaly_on_gpu():
    x = tl.tensor([1.0, -1.0], device="cuda")
    with pytest.raises(AnomalyError, match="Log"):
        with detect_anomaly():
            x.log()
