"""Code written for PyTorch, run twice: once with ``torch``, once with ``tensorlite`` passed in under
the name ``torch``. Each idiom below is one function of the framework module; the test runs it on
both and compares what it returns (values, dtypes, shapes, gradients, Python numbers, exception
types). The idioms are the ones the GPT code people learn from uses (nanoGPT, minGPT, "Let's build
GPT", Hugging Face's GPT-2 block). Where tensorlite differs on purpose, the tests at the end pin
the difference and the message that says what to write instead.

The second half runs ``nanogpt_style.py`` (a GPT written nanoGPT's way) on both frameworks through
``port.py``, which changes only its three import lines.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
import port
import pytest
import torch

import tensorlite

FRAMEWORKS = {"torch": torch, "tensorlite": tensorlite}
IDIOMS: dict = {}


def idiom(fn=None, *, rtol=1e-5, atol=1e-6):
    """Register ``fn(torch) -> result`` (any nesting of dicts, lists, tensors and numbers)."""
    def register(f):
        IDIOMS[f.__name__] = (f, rtol, atol)
        return f

    return register(fn) if fn is not None else register


def arr(seed, *shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def raised(fn):
    """The name of the exception ``fn()`` raises, or ``"ok"``."""
    try:
        fn()
    except Exception as e:  # the comparison is of the exception's type
        return type(e).__name__
    return "ok"


def as_plain(x):
    """Tensors (either framework) as NumPy arrays; containers recursively; the rest as is."""
    if isinstance(x, dict):
        return {k: as_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [as_plain(v) for v in x]
    if hasattr(x, "detach") and hasattr(x, "shape"):
        return np.asarray(x.detach().numpy())
    if isinstance(x, torch.dtype):
        return str(x).replace("torch.", "")
    if isinstance(x, np.dtype):
        return x.name
    return x


def assert_same(ref, ours, rtol, atol, where="result"):
    if isinstance(ref, dict):
        assert isinstance(ours, dict) and ref.keys() == ours.keys(), f"{where}: keys {ref.keys()} vs {ours}"
        for k in ref:
            assert_same(ref[k], ours[k], rtol, atol, f"{where}[{k!r}]")
    elif isinstance(ref, list):
        assert isinstance(ours, list) and len(ref) == len(ours), f"{where}: {ref} vs {ours}"
        for i, (a, b) in enumerate(zip(ref, ours)):
            assert_same(a, b, rtol, atol, f"{where}[{i}]")
    elif isinstance(ref, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{where}: torch gave an array, tensorlite {type(ours).__name__}"
        assert ref.shape == ours.shape, f"{where}: shape {ref.shape} vs {ours.shape}"
        assert ref.dtype == ours.dtype, f"{where}: dtype {ref.dtype} vs {ours.dtype}"
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, err_msg=where)
        else:
            np.testing.assert_array_equal(ours, ref, err_msg=where)
    elif isinstance(ref, float):
        assert isinstance(ours, (float, int)), f"{where}: {ref!r} vs {ours!r}"
        assert ours == pytest.approx(ref, rel=rtol, abs=atol), f"{where}: {ref!r} vs {ours!r}"
    else:
        assert type(ref) is type(ours) and ref == ours, f"{where}: {ref!r} vs {ours!r}"


def run(name, framework):
    fn = IDIOMS[name][0]
    torch.manual_seed(0)
    tensorlite.manual_seed(0)
    with torch.enable_grad():
        return as_plain(fn(FRAMEWORKS[framework]))


# ================================================================================================
# tensors
# ================================================================================================
@idiom
def sizes_and_counts(torch):
    x = torch.zeros(2, 3, 4)
    B, T, C = x.size()
    return [B, T, C, x.size(-1), x.numel(), x.dim(), x.ndim, len(x), list(x.shape), x.size()[:-1] + (5,)]


@idiom
def factories_and_dtypes(torch):
    idx = torch.tensor([3, 1, 2], dtype=torch.long)
    return {
        "arange": torch.arange(0, 5, dtype=torch.long, device=idx.device),
        "arange_T": torch.arange(4),
        "float_arange": torch.arange(0.0, 1.0, 0.25),
        "zeros_tuple": torch.zeros((1, 1), dtype=torch.long),
        "ones_bool": torch.ones(2, 2, dtype=torch.bool),
        "full_0d": torch.full([], 2.5, dtype=torch.float32, device=idx.device),
        "list_long": torch.tensor([5, 6, 7], dtype=torch.long)[None, ...],
        "from_numpy": torch.from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "zeros_like": torch.zeros_like(idx, dtype=torch.float32),
        "ones_like_bool": torch.ones_like(idx, dtype=torch.bool),
        "dtypes": [torch.float32, torch.float64, torch.float16, torch.long, torch.int64, torch.int32,
                   torch.bool, torch.float, torch.double, torch.half, torch.int],
        "finfo_min": float(torch.finfo(torch.float32).min),
        "eye": torch.eye(3),
        "linspace": torch.linspace(0, 1, 5),
        "randint_shape": list(torch.randint(10, (4,)).shape) + list(torch.randint(0, 10, (2, 3)).shape),
        "randint_dtype": torch.randint(10, (4,)).dtype,
        "is_tensor": [torch.is_tensor(idx), torch.is_tensor([1])],
    }


@idiom
def to_and_casts(torch):
    x = torch.tensor(arr(0, 2, 3), requires_grad=True)
    other = torch.zeros(1, dtype=torch.float64)
    y = x.to(torch.float64) * 2 + x.to("cpu", torch.float64) + x.to(other) + x.to(dtype=torch.float64)
    y.sum().backward()
    return {
        "y": y, "grad": x.grad, "grad_dtype": x.grad.dtype,
        "casts": [x.float().dtype, x.double().dtype, x.long().dtype, x.int().dtype, x.half().dtype,
                  x.bool().dtype, x.type(torch.float64).dtype, x.type_as(other).dtype],
        "same": x.to(torch.float32) is x,
    }


@idiom
def new_tensors_like(torch):
    x = torch.tensor(arr(1, 2, 3), dtype=torch.float64)
    return [x.new_zeros(4), x.new_ones((2, 2)), x.new_full((2,), 7.0), x.new_tensor([1.0, 2.0]),
            x.new_zeros(3, dtype=torch.long), x.new_empty(2, 3).shape]


@idiom
def view_split_and_heads(torch):
    B, T, C, nh = 2, 5, 12, 3
    x = torch.tensor(arr(2, B, T, 3 * C), requires_grad=True)
    q, k, v = x.split(C, dim=2)
    q = q.view(B, T, nh, C // nh).transpose(1, 2)
    k = k.view(B, T, nh, C // nh).transpose(1, 2)
    v = v.view(B, T, nh, C // nh).transpose(1, 2)
    y = (q @ k.transpose(-2, -1)) @ v
    merged = y.transpose(1, 2).contiguous().view(B, T, C)
    (merged * torch.tensor(arr(3, B, T, C))).sum().backward()
    return {"merged": merged, "grad": x.grad, "contig": [q.is_contiguous(), merged.is_contiguous()],
            "chunks": [c.shape for c in x.chunk(3, dim=-1)], "reshape": y.transpose(1, 2).reshape(B, T, C)}


@idiom
def view_of_a_transposed_tensor_raises(torch):
    # torch refuses: a view never copies. tensorlite refuses too, and points at the fixes.
    x = torch.zeros(2, 3, 4).transpose(1, 2)
    return [raised(lambda: x.view(2, 12)), raised(lambda: x.contiguous().view(2, 12)),
            raised(lambda: x.reshape(2, 12)), raised(lambda: x.view(2, 4, 3)), raised(lambda: x.view(-1))]


@idiom
def views_share_memory(torch):
    x = torch.zeros(2, 6)
    v = x.view(3, 4)
    v[0, 1] = 5.0
    t = x.t()
    t[2, 1] = 3.0  # writes through the transposed view too
    return [x, v.view(-1), x.view_as(torch.zeros(12)), x.t().t()]


@idiom
def indexing(torch):
    x = torch.tensor(arr(4, 2, 4, 6), requires_grad=True)
    last = x[:, [-1], :]  # a list keeps the dim
    picked = x[:, -1, :]
    rows = x[0, torch.tensor([0, 2, 2])]  # repeated rows accumulate gradient
    (last.sum() * 2 + picked.sum() + rows.sum() + x[..., 1:3].sum() + x[None, 1].sum()).backward()
    return {"last": last, "picked": picked, "rows": rows, "grad": x.grad, "none_ellipsis": x[None, ...].shape}


@idiom
def boolean_masks(torch):
    x = torch.tensor(arr(5, 3, 4), requires_grad=True)
    mask = x > 0
    kept = x.masked_fill(~mask, 0.0)
    both = (x > -0.5) & (x < 0.5)
    either = (x < -1) | (x > 1)
    flipped = mask ^ both
    masked_mean = (x * mask).sum() / mask.sum()
    (kept.sum() + masked_mean + torch.where(both, x, torch.zeros_like(x)).sum()).backward()
    return {"kept": kept, "both": both, "either": either, "flipped": flipped, "mean": masked_mean,
            "grad": x.grad, "selected": x[mask], "any_all": [bool(mask.any()), bool(mask.all())]}


@idiom
def causal_mask_from_tril_buffer(torch):
    T = 5
    bias = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    q = torch.tensor(arr(6, 2, 3, T, 4), requires_grad=True)
    att = (q @ q.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    att = att.masked_fill(bias[:, :, :T, :T] == 0, float("-inf"))
    att = torch.nn.functional.softmax(att, dim=-1)
    (att @ q).sum().backward()
    tril_bool = torch.ones(T, T, dtype=torch.bool).tril()
    return {"att": att, "grad": q.grad, "tril_bool": tril_bool, "triu": torch.triu(torch.ones(3, 3), diagonal=1)}


@idiom
def sdpa_masks_and_options(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    q, k, v = (torch.tensor(arr(s, 2, 3, 5, 4), requires_grad=True) for s in (8, 9, 10))
    pad = torch.tensor(rng.random((2, 1, 1, 5)) > 0.3)  # (B, 1, 1, T_k): broadcasts over heads and queries
    pad[:, :, :, 0] = True
    additive = torch.tensor(np.where(rng.random((5, 5)) > 0.4, 0.0, -np.inf).astype(np.float32))
    dead = torch.ones(5, 5, dtype=torch.bool)
    dead[2] = False  # query 2 may attend nothing: torch answers zeros
    outs = {
        "causal": F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True),
        "bool_pad": F.scaled_dot_product_attention(q, k, v, attn_mask=pad),
        "additive": F.scaled_dot_product_attention(q, k, v, attn_mask=additive),
        "pad_and_causal": F.scaled_dot_product_attention(q, k, v, attn_mask=pad, is_causal=True),
        "dead_row": F.scaled_dot_product_attention(q, k, v, attn_mask=dead),
        "scale": F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3),
        "positional": F.scaled_dot_product_attention(q, k, v, None, 0.0, True),
    }
    sum(o.sum() for o in outs.values()).backward()
    return {**outs, "dq": q.grad, "dk": k.grad, "dv": v.grad}


@idiom
def sdpa_grouped_query_attention(torch):
    q = torch.tensor(arr(11, 2, 6, 5, 4), requires_grad=True)
    kv = torch.tensor(arr(12, 2, 2, 5, 4), requires_grad=True)
    y = torch.nn.functional.scaled_dot_product_attention(q, kv, kv * 2, is_causal=True, enable_gqa=True)
    y.sum().backward()
    return [y, q.grad, kv.grad]


@idiom
def softmax_family(torch):
    F = torch.nn.functional
    x = torch.tensor(arr(13, 3, 5), requires_grad=True)
    p = F.softmax(x, dim=-1)
    lp = F.log_softmax(x, dim=1)
    (p[:, 0].sum() + lp[:, 1].sum() + x.softmax(-1)[:, 2].sum() + x.log_softmax(dim=-1)[:, 3].sum()).backward()
    return [p, lp, F.softmax(x, dim=0, dtype=torch.float64), x.grad]


@idiom
def gelu_variants(torch):
    F = torch.nn.functional
    x = torch.tensor(arr(14, 50, scale=3.0), requires_grad=True)
    new_gelu = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    out = [torch.nn.GELU()(x), torch.nn.GELU(approximate="tanh")(x), F.gelu(x), F.gelu(x, approximate="tanh"),
           new_gelu, torch.nn.ReLU()(x), F.relu(x), F.silu(x), torch.nn.Tanh()(x), torch.sigmoid(x)]
    sum(o.sum() for o in out).backward()
    return out + [x.grad, torch.nn.GELU().approximate]


@idiom
def losses(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(15)
    logits = torch.tensor(arr(15, 6, 5), requires_grad=True)
    targets = torch.tensor(rng.integers(0, 5, 6))
    targets[1] = -1
    w = torch.tensor(rng.random(5).astype(np.float32) + 0.5)
    logp = F.log_softmax(logits, dim=-1)
    out = {
        "ce_ignore": F.cross_entropy(logits, targets, ignore_index=-1),
        "ce_sum": F.cross_entropy(logits, targets.clamp(min=0), reduction="sum"),
        "ce_none": F.cross_entropy(logits, targets.clamp(min=0), reduction="none"),
        "ce_weight": F.cross_entropy(logits, targets.clamp(min=0), weight=w),
        "ce_weight_ignore": F.cross_entropy(logits, targets, w, ignore_index=-1),
        "ce_smooth": F.cross_entropy(logits, targets.clamp(min=0), label_smoothing=0.1),
        "ce_3d": F.cross_entropy(logits.view(2, 3, 5).transpose(1, 2), targets.clamp(min=0).view(2, 3)),
        "nll": F.nll_loss(logp, targets, ignore_index=-1),
        "nll_sum": F.nll_loss(logp, targets, ignore_index=-1, reduction="sum"),
        "nll_none": F.nll_loss(logp, targets, ignore_index=-1, reduction="none"),
        "nll_weight": F.nll_loss(logp, targets.clamp(min=0), weight=w),
        "modules": [torch.nn.CrossEntropyLoss(ignore_index=-1)(logits, targets),
                    torch.nn.NLLLoss(reduction="sum")(logp, targets.clamp(min=0)),
                    torch.nn.MSELoss()(logits, torch.zeros_like(logits))],
        "mse": F.mse_loss(logits, torch.ones_like(logits)),
    }
    sum(v.sum() for v in out.values() if not isinstance(v, list)).backward()
    return {**out, "grad": logits.grad}


@idiom
def reductions_and_math(torch):
    x = torch.tensor(arr(16, 3, 4), requires_grad=True)
    vals, idx = torch.max(x, dim=-1)
    rms = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    out = [x.sum(dim=-1, keepdim=True), x.mean(-1), x.var(-1, unbiased=False), x.std(0), vals, idx,
           x.argmax(dim=-1, keepdim=True), x.max(), x.abs().max().item(), rms, x ** 2, x.shape[-1] ** -0.5 * x,
           torch.matmul(x, x.t()), torch.cat((x, x), dim=1), torch.stack([x, x * 2], dim=0), x.exp().log(),
           x.clamp(min=-0.5, max=0.5), torch.maximum(x, torch.zeros_like(x)), x.norm(dim=-1), x.cumsum(dim=1),
           torch.cumsum(x, 0), x.square(), x.flatten(), x.unsqueeze(0).expand(2, -1, -1), x.repeat(2, 1),
           x.repeat_interleave(2, dim=1), torch.repeat_interleave(x, 2, dim=0), list(x.unbind(0))]
    total = sum(o.sum() for o in out if hasattr(o, "sum") and o.dtype in (torch.float32,))
    total = total + sum(t.sum() for t in out[-1])
    total.backward()
    return out + [x.grad]


@idiom
def rotary_tables_and_elementwise_math(torch):
    # LLaMA / Hugging Face rotary embeddings: torch.outer(t, inv_freq), emb.cos(), emb.sin();
    # the exact GELU written out with erf; PaLM's z-loss with logsumexp
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
    t = torch.arange(6, dtype=inv_freq.dtype)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    x = torch.tensor(arr(40, 3, 8), requires_grad=True)
    gelu = 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    z = torch.logsumexp(x * 3, dim=-1)
    out = [freqs, t.outer(inv_freq), torch.ger(t, inv_freq), emb.cos()[None, None], emb.sin(), torch.cos(x),
           torch.sin(x), gelu, z, x.logsumexp(0, keepdim=True), torch.log1p(x.abs()), x.reciprocal(),
           torch.reciprocal(x + 4)]
    (sum(o.sum() for o in out[5:]) + (z ** 2).mean() * 1e-4).backward()
    return out + [x.grad]


@idiom
def generator_none_is_the_default(torch):
    # code written with an optional generator passes generator=None when none is given
    torch.manual_seed(0)
    draws = [torch.randn(2, 3, generator=None), torch.rand(4, generator=None),
             torch.randint(0, 5, (3,), generator=None), torch.randperm(5, generator=None),
             torch.empty(3).normal_(generator=None), torch.nn.init.normal_(torch.empty(2), generator=None)]
    return [tuple(d.shape) for d in draws] + [str(d.dtype).replace("torch.", "") for d in draws]


@idiom
def products(torch):
    a, b = torch.tensor(arr(17, 3, 4), requires_grad=True), torch.tensor(arr(18, 4, 2), requires_grad=True)
    bias = torch.tensor(arr(19, 2), requires_grad=True)
    x3 = torch.tensor(arr(20, 2, 3, 4))
    out = [torch.mm(a, b), torch.addmm(bias, a, b), torch.addmm(bias, a, b, beta=0.5, alpha=2.0),
           torch.bmm(x3, x3.transpose(1, 2)), a @ b, torch.matmul(x3, b)]
    sum(o.sum() for o in out[:3]).backward()
    return out + [a.grad, b.grad, bias.grad]


@idiom
def top_k_and_sampling(torch):
    F = torch.nn.functional
    logits = torch.tensor(arr(21, 3, 10), requires_grad=True)
    v, ix = torch.topk(logits, 3)
    v.sum().backward()
    with torch.no_grad():
        cut = logits / 0.8
        cut[cut < v[:, [-1]] / 0.8] = -float("Inf")
        probs = F.softmax(cut, dim=-1)
        only = probs.clone()
        only[only < only.max(dim=-1, keepdim=True).values] = 0.0
        greedy = torch.multinomial(only, num_samples=1)  # one category left: no randomness
    sorted_logits, sorted_idx = torch.sort(logits.detach(), descending=True)
    cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    smallest = logits.detach().topk(2, dim=0, largest=False)
    return {"v": v, "ix": ix, "grad": logits.grad, "probs": probs, "greedy": greedy,
            "sorted": sorted_logits, "order": sorted_idx, "argsort": torch.argsort(logits.detach(), dim=-1),
            "cum": cum, "nucleus": cum > 0.9, "smallest": list(smallest), "named": [v.shape, ix.dtype]}


@idiom
def multinomial_shapes(torch):
    probs = torch.tensor([[0.2, 0.0, 0.8], [0.5, 0.5, 0.0]])
    one = torch.multinomial(probs, num_samples=1)
    two = torch.multinomial(probs, 2)  # without replacement: both nonzero categories, in some order
    many = torch.multinomial(probs, 50, replacement=True)
    flat = torch.multinomial(torch.tensor([0.0, 1.0, 3.0]), 2)
    return {"shapes": [one.shape, two.shape, many.shape, flat.shape], "dtype": one.dtype,
            "distinct": torch.sort(two, dim=-1).values, "row0_never_1": bool((many[0] != 1).all()),
            "row1_never_2": bool((many[1] != 2).all()), "flat_sorted": torch.sort(flat).values}


@idiom
def in_place_under_no_grad(torch):
    p = torch.tensor(arr(22, 3, 4), requires_grad=True)
    src = torch.tensor(arr(23, 4, 3))
    m, v = torch.zeros(3, 4), torch.zeros(3, 4)
    g = torch.tensor(arr(24, 3, 4))
    with torch.no_grad():
        p.copy_(src.t())
        p.mul_(1 - 0.01)
        p.add_(g, alpha=-0.1)
        m.lerp_(g, 0.1)
        v.mul_(0.99).addcmul_(g, g, value=0.01)
        p.addcdiv_(m, v.sqrt().add_(1e-8), value=-0.001)
        q = p.clone().clamp_(-0.5, 0.5).sub_(0.1).div_(2.0)
        filled = torch.empty(2, 2).fill_(3.0)
        zeroed = torch.ones(2).zero_()
        masked = torch.ones(2, 3).masked_fill_(torch.tensor([[True, False, True]] * 2), -1.0)
    return {"p": p, "m": m, "v": v, "q": q, "filled": filled, "zeroed": zeroed, "masked": masked,
            "still_leaf": [p.requires_grad, p.is_leaf, p.grad is None]}


@idiom
def in_place_refusals_shared_with_torch(torch):
    p = torch.ones(3, requires_grad=True)
    out = [raised(lambda: p.mul_(2)), raised(lambda: p.copy_(torch.zeros(3))), raised(lambda: p.zero_())]
    with torch.no_grad():
        out.append(raised(lambda: p.mul_(2)))
    return out + [p]


@idiom
def hooks_are_removable(torch):
    x = torch.tensor(arr(25, 3), requires_grad=True)
    seen = []
    h1 = x.register_hook(lambda g: seen.append(g.clone()))
    h2 = x.register_hook(lambda g: g * 10)
    (x * 2).sum().backward()
    first = x.grad.clone()
    h2.remove()
    x.grad = None
    (x * 2).sum().backward()
    h1.remove()
    y = x * 3
    y.retain_grad()
    hy = y.register_hook(lambda g: g + 1)
    (y * 2).sum().backward()
    hy.remove()
    lin = torch.nn.Linear(3, 2)
    calls = []
    hf = lin.register_forward_hook(lambda mod, inp, out: calls.append(tuple(out.shape)))
    hp = lin.register_forward_pre_hook(lambda mod, inp: calls.append("pre"))
    lin(torch.zeros(1, 3))
    hf.remove()
    hp.remove()
    lin(torch.zeros(1, 3))
    return {"first": first, "second": x.grad, "seen": len(seen), "y_grad": y.grad, "calls": calls}


@idiom
def module_backward_hooks(torch):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    fill_params(torch, net, 26)
    log = []

    def record(name):
        return lambda mod, gin, gout: log.append([name, [None if g is None else g for g in gin], list(gout)])

    handles = [m.register_full_backward_hook(record(str(i))) for i, m in enumerate(net)]
    doubling = net[1].register_full_backward_hook(lambda mod, gin, gout: (gin[0] * 2,))
    x = torch.tensor(arr(27, 5, 3), requires_grad=True)
    net(x).pow(2).sum().backward()
    first_grad = x.grad.clone()
    for h in handles + [doubling]:
        h.remove()
    x.grad = None
    net(x).pow(2).sum().backward()
    return {"log": log, "first": first_grad, "after_remove": x.grad}


@idiom
def grad_modes(torch):
    x = torch.ones(2, requires_grad=True)

    @torch.no_grad()
    def decorated(t):
        return t * 2

    with torch.no_grad():
        a = x * 2
    with torch.set_grad_enabled(False):
        b = x * 2
    with torch.no_grad():
        with torch.enable_grad():
            c = x * 2
    with torch.inference_mode():
        d = x * 2
    return [decorated(x).requires_grad, a.requires_grad, b.requires_grad, c.requires_grad, d.requires_grad,
            torch.is_grad_enabled(), (x * 2).grad_fn is not None, x.grad_fn is None,
            raised(lambda: (x * 2).sum().backward() or (x * 2).backward())]


@idiom
def iterate_and_format(torch):
    ix = torch.tensor([4, 1, 3])
    data = torch.arange(10)
    rows = torch.stack([data[i:i + 3] for i in ix])
    losses = torch.zeros(3)
    for k in range(3):
        losses[k] = float(k) / 2
    loss = losses.mean()
    return [rows, f"{loss:.4f}", f"{losses[1]:.2f}", "%.3f" % loss.item(),  # noqa: UP031  (nanoGPT's own formatting)
            float(loss), int(ix[0]),
            [int(i) for i in ix], ix.tolist(), data[ix[1]:ix[1] + 2]]


# ================================================================================================
# modules
# ================================================================================================
def fill_params(torch, module, seed=0, scale=0.3):
    """Deterministic weights, identical on both frameworks."""
    with torch.no_grad():
        for i, (_, p) in enumerate(sorted(module.named_parameters())):
            p.copy_(torch.tensor(arr(seed + i, *p.shape, scale=scale)))


@idiom
def containers_and_names(torch):
    nn = torch.nn
    model = nn.Module()
    model.transformer = nn.ModuleDict(dict(
        wte=nn.Embedding(10, 4), drop=nn.Dropout(0.0),
        h=nn.ModuleList([nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 4)) for _ in range(2)]),
        ln_f=nn.LayerNorm(4),
    ))
    model.head = nn.Linear(4, 10, bias=False)
    model.transformer.wte.weight = model.head.weight  # tied
    model.seq = nn.Sequential(OrderedDict([("fc", nn.Linear(4, 4)), ("act", nn.ReLU())]))
    model.extra = nn.ParameterList([nn.Parameter(torch.zeros(2))])
    model.table = nn.ParameterDict({"scale": nn.Parameter(torch.ones(3))})
    counts = {}
    model.apply(lambda m: counts.__setitem__(type(m).__name__, counts.get(type(m).__name__, 0) + 1))
    td = model.transformer
    return {
        "params": [n for n, _ in model.named_parameters()],
        "modules": [n for n, _ in model.named_modules()],
        "state_dict": list(model.state_dict().keys()),
        "children": [n for n, _ in model.named_children()],
        "counts": counts,
        "dict_api": [list(td.keys()), "wte" in td, len(td), [k for k in td], type(td["ln_f"]).__name__,
                     len(td.h), type(td.h[1][2]).__name__, type(model.seq.fc).__name__, type(model.seq[1]).__name__],
        "tied": model.transformer.wte.weight is model.head.weight,
        "n_params": sum(p.numel() for p in model.parameters()),
        "submodule": type(model.get_submodule("transformer.h.0.2")).__name__,
        "decay": sorted(n for n, p in model.named_parameters() if p.dim() >= 2),
        "mod_params": sorted(f"{mn}.{pn}" if mn else pn for mn, m in model.named_modules()
                             for pn, _ in m.named_parameters(recurse=False)),
    }


@idiom
def module_forward_modes_and_dtype(torch):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(4, 6), nn.GELU(approximate="tanh"), nn.Dropout(0.5), nn.Linear(6, 3),
                        nn.LayerNorm(3), nn.Softmax(dim=-1))
    fill_params(torch, net, 30)
    x = torch.tensor(arr(31, 2, 4))
    net.eval()
    y = net(x)
    flags = [m.training for m in net.modules()]
    net.train()
    flags_train = [m.training for m in net.modules()]
    net.to("cpu")
    net.to(torch.float64)
    y64 = net.eval()(x.double())
    net.zero_grad(set_to_none=True)
    return [y, flags, flags_train, [p.dtype for p in net.parameters()], y64, net[0].weight.grad is None]


@idiom
def norms(torch):
    nn = torch.nn
    x = torch.tensor(arr(32, 2, 3, 4), requires_grad=True)
    ln = nn.LayerNorm(4)
    fill_params(torch, ln, 33)
    ln_plain = nn.LayerNorm(4, elementwise_affine=False)
    ln_2d = nn.LayerNorm((3, 4), eps=1e-3)
    rms = nn.RMSNorm(4)
    fill_params(torch, rms, 34)
    outs = [ln(x), ln_plain(x), ln_2d(x), rms(x), nn.LayerNorm(4, bias=False)(x),
            torch.nn.functional.layer_norm(x, (4,), ln.weight, ln.bias, 1e-5)]
    sum(o.sum() * (i + 1) for i, o in enumerate(outs)).backward()
    return outs + [x.grad, ln.weight.grad, rms.weight.grad, [n for n, _ in ln_plain.named_parameters()],
                   list(ln_2d.weight.shape)]


@idiom
def init_functions(torch):
    init = torch.nn.init
    w = torch.empty(64, 128)
    big = torch.empty(400, 300)
    out = {"gains": [init.calculate_gain(g) for g in ("linear", "relu", "tanh", "sigmoid", "selu")]
           + [init.calculate_gain("leaky_relu", 0.2)],
           "zeros": init.zeros_(torch.empty(2, 2)), "ones": init.ones_(torch.empty(3)),
           "constant": init.constant_(torch.empty(2), 0.5)}
    fan_in, fan_out = 128, 64
    init.xavier_uniform_(w)
    out["xavier_u_bound"] = bool(w.abs().max() <= math.sqrt(6 / (fan_in + fan_out)))
    init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Linear's own default
    out["kaiming_u_bound"] = bool(w.abs().max() <= 1 / math.sqrt(fan_in))
    init.trunc_normal_(big, std=0.02, a=-0.04, b=0.04)
    out["trunc_in"] = bool((big.abs() <= 0.04).all())
    init.normal_(big, mean=1.0, std=0.02)
    out["normal_mean"] = round(big.mean().item(), 2)
    # standard deviations, rounded: the draws differ, the formulas must not
    for name, fn in [("xavier_n", lambda t: init.xavier_normal_(t)),
                     ("kaiming_n", lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")),
                     ("uniform", lambda t: init.uniform_(t, -0.1, 0.1)), ("normal", lambda t: init.normal_(t, std=0.02))]:
        fn(big)
        out[name] = round(big.std().item() / {"xavier_n": math.sqrt(2 / 700), "kaiming_n": math.sqrt(2 / 400),
                                               "uniform": 0.2 / math.sqrt(12), "normal": 0.02}[name], 1)
    return out


@idiom
def state_dict_round_trip(torch):
    nn = torch.nn
    a = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    fill_params(torch, a, 40)
    a.register_buffer("steps", torch.zeros(1))
    a.register_buffer("scratch", torch.ones(2), persistent=False)
    b = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    b.register_buffer("steps", torch.ones(1))
    result = b.load_state_dict(a.state_dict())
    sd = b.state_dict()
    with torch.no_grad():
        for k in sd:
            sd[k].copy_(sd[k] * 2)  # state_dict tensors share memory with the module
    return [list(a.state_dict().keys()), list(result.missing_keys), list(result.unexpected_keys),
            b[0].weight.clone(), b.steps.clone(), raised(lambda: b.load_state_dict({"0.weight": torch.zeros(4, 3)})),
            list(b.load_state_dict({"0.weight": torch.zeros(4, 3)}, strict=False).missing_keys)]


# ================================================================================================
# optimizers and schedulers
# ================================================================================================
def make_params(torch, seed=50):
    return [torch.nn.Parameter(torch.tensor(arr(seed + i, *s))) for i, s in enumerate([(4, 3), (3,), (2, 2)])]


def fake_grads(torch, params, step):
    for i, p in enumerate(params):
        p.grad = torch.tensor(arr(100 + 10 * step + i, *p.shape))


@idiom(rtol=1e-5, atol=1e-6)
def adamw_param_groups(torch):
    params = make_params(torch)
    groups = [{"params": [params[0], params[2]], "weight_decay": 0.1},
              {"params": [params[1]], "weight_decay": 0.0, "lr": 3e-3, "betas": (0.8, 0.9)}]
    opt = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for step in range(3):
        fake_grads(torch, params, step)
        opt.step()
        opt.zero_grad(set_to_none=True)
    state = opt.state_dict()
    return {"params": params, "grads": [p.grad is None for p in params],
            "groups": [{k: v for k, v in g.items() if k in ("lr", "weight_decay", "betas", "eps")}
                       for g in opt.param_groups],
            "state_steps": [float(s["step"]) for s in state["state"].values()],
            "exp_avg": [s["exp_avg"] for s in opt.state.values()]}


@idiom
def adam_and_sgd(torch):
    pa, ps, pn = make_params(torch, 60), make_params(torch, 70), make_params(torch, 80)
    opts = [torch.optim.Adam(pa, lr=1e-2, weight_decay=0.01),
            torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
            torch.optim.SGD([{"params": pn[:2]}, {"params": pn[2:], "lr": 0.01}], lr=0.1, momentum=0.9, nesterov=True)]
    for step in range(3):
        for opt, ps_ in zip(opts, (pa, ps, pn)):
            fake_grads(torch, ps_, step)
            opt.step()
    opts[0].zero_grad(set_to_none=False)
    return [pa, ps, pn, [p.grad for p in pa]]


@idiom
def lr_schedulers(torch):
    sched = torch.optim.lr_scheduler

    def lrs(make, steps=12, groups=1):
        params = make_params(torch)
        opt = torch.optim.SGD([{"params": [p]} for p in params[:groups]], lr=0.1)
        s = make(opt)
        seen = []
        for _ in range(steps):
            seen.append(s.get_last_lr())
            opt.step()
            s.step()
        return seen + [[g["lr"] for g in opt.param_groups]]

    warmup = 3
    return {
        "lambda": lrs(lambda o: sched.LambdaLR(o, lambda step: min(1.0, (step + 1) / warmup))),
        "lambda_per_group": lrs(lambda o: sched.LambdaLR(o, [lambda s: 0.5 ** s, lambda s: 1.0 / (s + 1)]), groups=2),
        "step": lrs(lambda o: sched.StepLR(o, step_size=4, gamma=0.5)),
        "multistep": lrs(lambda o: sched.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3)),
        "exponential": lrs(lambda o: sched.ExponentialLR(o, gamma=0.9)),
        "cosine": lrs(lambda o: sched.CosineAnnealingLR(o, T_max=4, eta_min=0.01), steps=13),
        "linear": lrs(lambda o: sched.LinearLR(o, start_factor=0.25, total_iters=4)),
        "linear_default": lrs(lambda o: sched.LinearLR(o)),
    }


@idiom
def gradient_clipping(torch):
    params = make_params(torch)
    fake_grads(torch, params, 0)
    for p in params:
        p.grad.mul_(10)
    norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
    after = torch.nn.utils.clip_grad_norm_(params, 1e9)
    small = make_params(torch, 90)
    fake_grads(torch, small, 1)
    torch.nn.utils.clip_grad_value_(small, 0.5)
    inf_norm = torch.nn.utils.clip_grad_norm_(small, 0.1, norm_type=float("inf"))
    return [norm, norm.item(), after, [p.grad for p in params], [p.grad for p in small], inf_norm, f"{norm:.3f}"]


@idiom
def training_step_with_everything(torch):
    """A "Let's build GPT"-style bigram step: Embedding logits, cross_entropy, AdamW, zero_grad."""
    nn, F = torch.nn, torch.nn.functional
    rng = np.random.default_rng(200)
    data = torch.tensor(rng.integers(0, 12, 64), dtype=torch.long)

    class Bigram(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab, vocab)

        def forward(self, idx, targets=None):
            logits = self.token_embedding_table(idx)
            if targets is None:
                return logits, None
            B, T, C = logits.shape
            return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))

    model = Bigram(12)
    fill_params(torch, model, 201)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    seen = []
    for _ in range(3):
        ix = torch.tensor(rng.integers(0, 64 - 9, 4))
        xb = torch.stack([data[i:i + 8] for i in ix])
        yb = torch.stack([data[i + 1:i + 9] for i in ix])
        _, loss = model(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen.append(loss.item())
    return [seen, model.token_embedding_table.weight]


@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_idiom_agrees_with_torch(name):
    _, rtol, atol = IDIOMS[name]
    assert_same(run(name, "torch"), run(name, "tensorlite"), rtol, atol, name)


# ================================================================================================
# where tensorlite differs on purpose: the difference and the message
# ================================================================================================
def test_view_error_points_at_reshape_and_contiguous():
    x = tensorlite.zeros(2, 3, 4).transpose(1, 2)
    with pytest.raises(RuntimeError, match=r"view: shape \(2, 12\) is not compatible.*\.reshape\(\.\.\.\).*\.contiguous\(\)"):
        x.view(2, 12)
    with pytest.raises(TypeError, match=r"view\(dtype\) reinterprets the bytes.*\.to\(dtype\)"):
        x.view(tensorlite.float16)


def test_in_place_on_a_graph_tensor_is_refused_with_the_rewrite():
    # torch records in-place ops on non-leaf tensors; tensorlite's graph holds no in-place ops
    x = tensorlite.ones(3, requires_grad=True)
    h = x * 2
    with pytest.raises(RuntimeError, match=r"part of the autograd graph; torch would record.*out-of-place form"):
        h.add_(1)
    with pytest.raises(RuntimeError, match=r"part of the autograd graph"):
        h[0] = 5.0
    buf = tensorlite.zeros(3)
    with pytest.raises(RuntimeError, match=r"value written requires grad; torch would make this tensor part"):
        buf.copy_(x)
    t = torch.ones(3, requires_grad=True) * 2
    t.add_(1)  # fine in torch
    t.sum().backward()


def test_data_is_the_array_itself():
    # torch's .data is a Tensor (p.data.normal_() works); tensorlite's is the NumPy/CuPy array, which
    # its own code reads on every op. The portable spellings work on both:
    for fw in (torch, tensorlite):
        p = fw.nn.Parameter(fw.zeros(2, 3))
        with fw.no_grad():
            p.normal_(mean=0.0, std=0.02)
            fw.nn.init.zeros_(p)
            p.detach().fill_(1.0)  # detach() shares memory in both
        assert float(p.detach().sum()) == 6.0
    assert isinstance(tensorlite.nn.Parameter(tensorlite.zeros(2)).data, np.ndarray)


def test_causal_alignment_with_fewer_queries_than_keys():
    # torch aligns is_causal top-left (query 0 sees key 0 only); tensorlite bottom-right (the queries
    # are the last ones, what KV-cache decoding needs). With T_q == T_k they agree (tested above).
    q, k = arr(300, 1, 1, 2, 4), arr(301, 1, 1, 5, 4)
    ours = tensorlite.nn.functional.scaled_dot_product_attention(
        tensorlite.tensor(q), tensorlite.tensor(k), tensorlite.tensor(k), is_causal=True).numpy()
    bottom_right = torch.ones(2, 5, dtype=torch.bool).tril(diagonal=3)
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(k), attn_mask=bottom_right).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    top_left = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(k), is_causal=True).numpy()
    assert np.abs(top_left - ours).max() > 1e-3


def test_messages_for_what_is_not_there():
    with pytest.raises(AttributeError, match="tensorlite has no bfloat16.*use float32"):
        tensorlite.bfloat16  # noqa: B018
    x = tensorlite.ones(2, requires_grad=True)
    with pytest.raises(NotImplementedError, match="create_graph=True.*no second derivatives"):
        (x * x).sum().backward(create_graph=True)
    with pytest.raises(TypeError, match="multinomial: generator= is not supported.*tl.manual_seed"):
        tensorlite.multinomial(tensorlite.ones(3), 1, generator=object())
    with pytest.raises(TypeError, match="randn: generator= is not supported.*tl.manual_seed"):
        tensorlite.randn(3, generator=object())
    with pytest.raises(AttributeError, match="tensorlite has no Generator.*tl.manual_seed"):
        tensorlite.Generator  # noqa: B018
    with pytest.raises(AttributeError, match="tensorlite has no einsum.*@"):
        tensorlite.einsum  # noqa: B018
    with pytest.raises(AttributeError, match="tensorlite has no polar.*RotaryEmbedding"):
        tensorlite.polar  # noqa: B018
    with pytest.raises(ValueError, match=r"outer: both operands must be 1-D, got \(2, 2\)"):
        tensorlite.outer(tensorlite.ones(2, 2), tensorlite.ones(2))
    with pytest.raises(ValueError, match="Softmax: give dim"):
        tensorlite.nn.Softmax()
    with pytest.raises(TypeError, match="size_average and reduce are deprecated.*reduction="):
        tensorlite.nn.functional.cross_entropy(tensorlite.ones(2, 3), tensorlite.tensor([0, 1]), size_average=True)
    with pytest.raises(ValueError, match=r"multinomial: cannot draw 3 samples without replacement.*replacement=True"):
        tensorlite.multinomial(tensorlite.tensor([0.5, 0.5, 0.0]), 3)
    with pytest.raises(ValueError, match=r"topk: k must be an int in \[0, 3\]"):
        tensorlite.topk(tensorlite.ones(3), 4)
    with pytest.raises(TypeError, match=r"Tensor.to: expected a device .* a dtype .* or a tensor"):
        tensorlite.ones(2).to(3.5)


def test_multinomial_is_the_inverse_cdf_of_the_seeded_uniforms():
    # the documented rule: u = generator.random() (float64), first category whose cumulative
    # weight exceeds u * total; so a reseeded NumPy generator predicts every draw
    w = np.array([[0.1, 0.0, 0.6, 0.3], [2.0, 1.0, 0.0, 1.0]])
    tensorlite.manual_seed(7)
    draws = tensorlite.multinomial(tensorlite.tensor(w), 300, replacement=True).numpy()
    u = np.random.default_rng(7).random((2, 300))
    cdf = np.cumsum(w, axis=1)
    expected = np.stack([np.searchsorted(cdf[i], u[i] * cdf[i, -1], side="right") for i in range(2)])
    np.testing.assert_array_equal(draws, expected)
    assert not (draws[0] == 1).any() and not (draws[1] == 2).any()  # zero weight, never drawn
    freq = np.bincount(draws[0], minlength=4) / 300
    np.testing.assert_allclose(freq, w[0] / w[0].sum(), atol=0.08)


def test_multinomial_without_replacement_draws_each_category_once():
    tensorlite.manual_seed(3)
    out = tensorlite.multinomial(tensorlite.ones(4, 6), 6).numpy()
    assert (np.sort(out, axis=1) == np.arange(6)).all()


def test_gradients_of_the_new_ops(rng):
    from tensorlite import gradcheck

    x = tensorlite.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert gradcheck(lambda t: tensorlite.cumsum(t, 1), x)
    assert gradcheck(lambda t: tensorlite.topk(t, 2, dim=1).values, x)
    assert gradcheck(lambda t: tensorlite.sort(t, dim=0, descending=True).values, x)
    assert gradcheck(lambda t: t.repeat(2, 1, 3), x)
    assert gradcheck(lambda t: t.repeat_interleave(3, dim=0), x)
    for f in (tensorlite.sin, tensorlite.cos, tensorlite.erf, lambda t: tensorlite.log1p(t * t),
              lambda t: (t * t + 1).reciprocal(), lambda t: tensorlite.logsumexp(t, 1),
              lambda t: tensorlite.logsumexp(t, 0, keepdim=True), lambda t: tensorlite.outer(t[0], t[1])):
        assert gradcheck(f, x)
    w = tensorlite.tensor(rng.random(5))
    assert gradcheck(lambda t: tensorlite.nn.functional.nll_loss(t, tensorlite.tensor([0, 4, 2]), weight=w), x)
    q = tensorlite.tensor(rng.standard_normal((1, 2, 4, 3)), requires_grad=True)
    dead = tensorlite.ones(4, 4, dtype=tensorlite.bool)
    dead[1] = False
    assert gradcheck(lambda t: tensorlite.nn.functional.scaled_dot_product_attention(t, t, t, attn_mask=dead), q)


def test_attention_dropout_keeps_the_expectation():
    # dropout_p drops attention weights (scaled by 1/(1-p)): the mean over many draws is the plain output
    q = tensorlite.tensor(arr(310, 1, 1, 4, 8))
    F = tensorlite.nn.functional
    plain = F.scaled_dot_product_attention(q, q, q, is_causal=True).numpy()
    runs = np.mean([F.scaled_dot_product_attention(q, q, q, dropout_p=0.3, is_causal=True).numpy()
                    for _ in range(1000)], axis=0)
    np.testing.assert_allclose(runs, plain, atol=0.1)
    assert np.abs(runs - plain).mean() < 0.03
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\)"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.0)


def test_grad_fn_next_functions_walk_to_the_leaves():
    w = tensorlite.ones(3, requires_grad=True)
    y = (w * 2).sum()
    (mul, _), = y.grad_fn.next_functions
    assert mul.name == "ScalarMul"
    (acc, _), = mul.next_functions
    assert acc.name == "AccumulateGrad" and acc.variable is w


# ================================================================================================
# a nanoGPT-style GPT, unchanged but for its imports
# ================================================================================================
CFG = dict(block_size=16, vocab_size=40, n_layer=2, n_head=4, n_embd=32, dropout=0.0, bias=True)


def model_pair(flash=True, dropout_override=None):
    """The same GPT in both frameworks, with torch's initial weights copied into tensorlite's."""
    T, L = port.nanogpt_style("torch"), port.nanogpt_style("tensorlite")
    torch.manual_seed(0)
    cfg = dict(CFG, flash=flash)
    if dropout_override is not None:
        cfg["dropout"] = dropout_override
    ref = T.GPT(T.GPTConfig(**cfg))
    ours = L.GPT(L.GPTConfig(**cfg))
    result = ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    return ref, ours


def batch(seed=0, b=3, t=16):
    return np.random.default_rng(seed).integers(0, CFG["vocab_size"], (b, t))


@pytest.mark.parametrize("flash", [True, False], ids=["sdpa", "masked-softmax"])
def test_nanogpt_style_logits_gradients_and_adamw_step(flash):
    ref, ours = model_pair(flash)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert ours.transformer.wte.weight is ours.lm_head.weight  # tied, as in torch
    assert ours.get_num_params() == ref.get_num_params()
    x, y = batch(1), batch(2)
    y[0, :3] = -1  # ignored positions
    logits_t, loss_t = ref(torch.tensor(x), torch.tensor(y))
    logits_l, loss_l = ours(tensorlite.tensor(x), tensorlite.tensor(y))
    np.testing.assert_allclose(logits_l.numpy(), logits_t.detach().numpy(), atol=2e-6)
    assert loss_l.item() == pytest.approx(loss_t.item(), abs=1e-6)
    loss_t.backward()
    loss_l.backward()
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), atol=5e-6, err_msg=name)
    opt_t = ref.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    opt_l = ours.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    assert [len(g["params"]) for g in opt_l.param_groups] == [len(g["params"]) for g in opt_t.param_groups]
    before = {name: p.detach().numpy().copy() for name, p in ref.named_parameters()}
    opt_t.step()
    opt_l.step()
    for name, p in ours.named_parameters():
        # Adam divides by |grad|: where the exact gradient is 0 (the key bias: softmax ignores a
        # constant per row) both frameworks step on rounding noise, by +-lr in either direction
        noise = np.abs(theirs[name].grad.numpy()) < 1e-6
        step_t = theirs[name].detach().numpy() - before[name]
        step_l = p.numpy() - before[name]
        np.testing.assert_allclose(step_l[~noise], step_t[~noise], atol=1e-7, rtol=1e-3, err_msg=name)
    assert max(np.abs(p.grad.numpy()).max() for n, p in ref.named_parameters() if "c_attn.bias" not in n) > 1e-3
    # the last-position path (targets=None) keeps the time dim, as nanoGPT's x[:, [-1], :]
    last_t, _ = ref(torch.tensor(x))
    last_l, _ = ours(tensorlite.tensor(x))
    assert last_l.shape == tuple(last_t.shape) == (3, 1, 40)
    np.testing.assert_allclose(last_l.numpy(), last_t.detach().numpy(), atol=2e-6)


def test_nanogpt_style_greedy_and_top1_generation_agree():
    # top_k=1 leaves one token with probability 1, so both frameworks' real multinomial must pick it
    ref, ours = model_pair()
    ref.eval()
    ours.eval()
    start = batch(3, b=2, t=4)
    out_t = ref.generate(torch.tensor(start), 20, temperature=0.7, top_k=1)
    out_l = ours.generate(tensorlite.tensor(start), 20, temperature=0.7, top_k=1)
    assert out_l.tolist() == out_t.tolist()
    assert out_l.shape == (2, 24) and out_l.dtype == tensorlite.long


def test_nanogpt_style_seeded_samples_agree_given_the_same_uniforms(monkeypatch):
    # torch's and tensorlite's generators differ, so the same seed gives different samples. To
    # compare sampling itself, torch draws with the rule tensorlite's multinomial follows (inverse
    # CDF of u, the row's total times a uniform) fed with the uniforms tensorlite's generator
    # produces under the same seed: then every token of a 30-token top-k sample must agree.
    ref, ours = model_pair()
    ref.eval()
    ours.eval()
    start = batch(4, b=2, t=3)
    seed = 1234
    uniforms = np.random.default_rng(seed)

    def inverse_cdf(probs, num_samples, replacement=False):
        u = uniforms.random((probs.shape[0], num_samples))
        cdf = np.cumsum(probs.numpy().astype(np.float64), axis=1)
        picks = [np.searchsorted(cdf[i], u[i] * cdf[i, -1], side="right") for i in range(len(cdf))]
        return torch.tensor(np.minimum(np.stack(picks), probs.shape[1] - 1))

    monkeypatch.setattr(torch, "multinomial", inverse_cdf)
    out_t = ref.generate(torch.tensor(start), 30, temperature=1.2, top_k=12)
    tensorlite.manual_seed(seed)
    out_l = ours.generate(tensorlite.tensor(start), 30, temperature=1.2, top_k=12)
    assert out_l.tolist() == out_t.tolist()
    assert len(set(out_l[0].tolist()[3:])) > 3  # a real sample, not a greedy loop


def test_nanogpt_style_trains_on_tensorlite():
    _, ours = model_pair(dropout_override=0.1)
    opt = ours.configure_optimizers(0.1, 3e-3, (0.9, 0.95))
    sched = tensorlite.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 5))
    x = tensorlite.tensor(batch(5, b=4))
    y = tensorlite.tensor(np.roll(batch(5, b=4), -1, axis=1))
    losses = []
    for _ in range(25):
        _, loss = ours(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        tensorlite.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5  # it memorises the batch


@pytest.mark.skipif(not os.environ.get("NANOGPT_MODEL"), reason="set NANOGPT_MODEL=/path/to/nanoGPT/model.py")
def test_your_copy_of_nanogpt_model_py():
    """The recipe of docs/pytorch.md on a reader's own copy of nanoGPT's model.py."""
    path = os.environ["NANOGPT_MODEL"]
    T, L = port.load_module(path, "torch"), port.load_module(path, "tensorlite")
    kw = dict(block_size=16, vocab_size=40, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
    torch.manual_seed(0)
    ref, ours = T.GPT(T.GPTConfig(**kw)), L.GPT(L.GPTConfig(**kw))
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = batch(6, b=2)
    logits_t, loss_t = ref(torch.tensor(x), torch.tensor(x))
    logits_l, loss_l = ours(tensorlite.tensor(x), tensorlite.tensor(x))
    assert loss_l.item() == pytest.approx(loss_t.item(), abs=1e-6)
    loss_t.backward()
    loss_l.backward()
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), atol=5e-6, err_msg=name)


def test_port_swaps_only_the_imports_it_mirrors(tmp_path):
    from tensorlite.utils.port import load_module, port_source

    src = "import torch\nimport torch.nn as nn  # layers\n    from torch.nn import functional as F\nx = 'import torch'\n"
    assert port_source(src) == ("import tensorlite as torch\nimport tensorlite.nn as nn\n"
                                "    from tensorlite.nn import functional as F\nx = 'import torch'\n")
    with pytest.raises(ValueError, match=r"model.py:2: 'from torch.utils.data import DataLoader' imports a part"):
        port_source("import torch\nfrom torch.utils.data import DataLoader\n", "model.py")
    path = tmp_path / "tiny.py"
    path.write_text("import torch\nfrom torch import nn\n\nnet = nn.Linear(2, 3)\nkind = type(torch.zeros(1)).__module__\n")
    mod = load_module(path)
    assert mod.kind == "tensorlite.tensor" and isinstance(mod.net, tensorlite.nn.Linear)
