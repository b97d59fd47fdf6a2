"""The doctor against the public PyTorch sanity-check tools, side by side on buggy torch models.

    python bench/compare_tools.py [--bugs a,b,...] [--tools doctor,torcheck,...] [--tools-path DIR] [--json out.json]

The models: ``tests/user_models/torch_lm.py``, a small GPT laid out like nanoGPT (``transformer.h``,
a fused ``c_attn``, ``scaled_dot_product_attention``, tied embeddings, ``forward(idx, targets)``)
with one-line bugs switched on one at a time, each in the variant it needs (manual softmax,
RoPE, RMSNorm, a Hugging Face style output ...). Each tool is used as its README shows a user:

* ``neural-net-checklist``: the checks of ``assert_all_for_causal_llm_cross_entropy_loss``, each
  called on its own (the bundle stops at the first failure) on the batch it prepares (one-hot
  inputs entering through the token embedding), with a model factory whose forward returns the
  logits; the overfit check is capped at 1000 steps (its default is 65536);
* ``torchtest2``: ``check_model(model, x, y, optimizer=...)`` with ``forward_fn`` returning the
  model's own training loss and ``eval_forward_fn`` the logits;
* ``torch-audit``: ``audit_dynamic(model, optimizer=..., every_n_steps=1)`` around 20 training
  steps (its wrappers ``forward`` / ``backward`` / ``optimizer_step``);
* ``torcheck``: a registry with ``register(optimizer)``, ``add_module_changing_check`` on the
  model, ``add_module_nan_check`` and ``add_module_inf_check`` on its output layer (the model
  returns a tuple, which torcheck's output checks cannot read), then 20 training steps;
* the doctor: ``tl.debug.doctor(model, optimizer, scheduler, batch=(x, y))``.

A tool **finds** a bug when it flags something on the buggy model that it does not flag on the
healthy model of the same variant (so a tool's standing alarm on healthy models is not credit):
a failed assertion (neural-net-checklist), a FAIL or WARN (torchtest2, the doctor), a finding of
severity WARN or ERROR (torch-audit), a check's RuntimeError (torcheck). A tool that crashes on a
model counts as an error. A tool not installed is skipped with a line saying so. The tools are
not dependencies of tensorlite; install them for this bench only, without their declared
dependencies (neural-net-checklist asks for torchvision, which would replace the CPU torch build;
torcheck asks for torch<2.0; both run on torch 2.13):

    pip install --no-deps --target .bench_tools neural-net-checklist==1.1.0 torchtest2==0.1.0 \\
        torch-audit==0.3.0 torcheck==1.0.1 rich pillow
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = 20  # training steps the runtime tools watch


# ------------------------------------------------------------------------------------------------
# the models, and the two views of them the tools need
# ------------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


def logits_of(model, x):
    """Every position's logits, whatever the forward returns (nanoGPT gives only the last one
    without targets; the Hugging Face style variant an object with ``.logits``)."""
    torch = _torch()
    out = model(x)
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, tuple) and out[0].shape[1] == x.shape[1]:
        return out[0]
    return model(x, torch.zeros_like(x))[0]


def training_loss(model, parts, x, y):
    """The loss the run trains on: the model's own (``targets=`` or ``labels=``)."""
    if model.config.output == "hf":
        return model(x, labels=y).loss
    return model(x, y)[1]


def logits_module(model):
    """The model as ``x -> logits``. One-hot float inputs (neural-net-checklist's way to take
    gradients with respect to the input of a language model) enter through the token embedding:
    its output becomes ``x @ wte.weight``, as the checklist's own ``embedding_layer_name`` does."""
    torch = _torch()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if not x.is_floating_point():
                return logits_of(self.inner, x)
            wte = self.inner.transformer.wte
            handle = wte.register_forward_hook(lambda m, args, out: x @ m.weight)
            try:
                return logits_of(self.inner, x.argmax(-1))
            finally:
                handle.remove()

    return Logits(model)


def next_token_batch(model, parts):
    """(inputs, next-token targets) for the tools that compute their own cross-entropy."""
    x, y = parts["batch"]
    if model.config.output == "hf":  # the labels are the inputs; the model shifts them
        return x[:, :-1].contiguous(), x[:, 1:].contiguous()
    return x, y


# ------------------------------------------------------------------------------------------------
# the tools
# ------------------------------------------------------------------------------------------------
class Skip(Exception):
    pass


@contextlib.contextmanager
def quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run_doctor(build, bug, variant):
    from tensorlite.debug import doctor

    parts = build(bug, **variant)
    rep = doctor(parts["model"], parts["optimizer"], parts["scheduler"], batch=parts["batch"], loss_fn=parts["loss_fn"])
    errors = [r.name for r in rep.results if r.status == "error"]
    return {r.name for r in rep.results if r.status in ("fail", "warn")}, errors


def run_checklist(build, bug, variant):
    from neural_net_checklist import torch_diagnostics as nc
    from user_models import torch_lm

    probe = build(bug, **variant)
    V = probe["model"].config.vocab_size
    # as assert_all_for_causal_llm_cross_entropy_loss(..., embedding_layer_name=...) prepares it:
    # min(128, V) sequences, the inputs one-hot
    x, y = torch_lm.make_batch(bug, batch_size=min(128, V))
    if probe["model"].config.output == "hf":
        y = x.clone()
    x, y = next_token_batch(probe["model"], {"batch": (x, y)})
    batch = (_torch().nn.functional.one_hot(x, num_classes=V).float(), y)

    def factory():
        return logits_module(build(bug, **variant)["model"])

    def loss_fn(outputs, targets):  # the bundle's own loss for causal LMs
        return _torch().nn.functional.cross_entropy(outputs.reshape(-1, V), targets.reshape(-1))

    checks = {
        "loss_at_init": lambda: nc.assert_balanced_classification_cross_entropy_loss_at_init(
            factory(), batch, loss_fn=loss_fn, num_classes=V, device="cpu"),
        "init_calibrated": lambda: nc.assert_balanced_classification_cross_entropy_init_calibrated(
            factory(), batch, num_classes=V, device="cpu"),
        "forward_batch_independence": lambda: nc.assert_forward_batch_independence(factory, batch, device="cpu"),
        "forward_causal": lambda: nc.assert_forward_causal_property(factory, batch, device="cpu"),
        "non_zero_gradients": lambda: nc.assert_non_zero_gradients(factory(), batch, device="cpu"),
        "backward_batch_independence": lambda: nc.assert_backward_batch_independence(factory, batch, device="cpu"),
        "backward_causal": lambda: nc.assert_backward_causal_property(factory, batch, device="cpu"),
        "input_independent_baseline": lambda: nc.assert_input_independent_baseline_worse(
            factory, batch, device="cpu", loss_fn=loss_fn),
        "overfit_batch": lambda: nc.assert_overfit_to_batch(factory(), batch, device="cpu", loss_fn=loss_fn,
                                                            threshold=1e-1, max_steps=1000),
    }
    flagged, errors = set(), []
    for name, check in checks.items():
        try:
            check()
        except AssertionError:
            flagged.add(name)
        except Exception as e:  # the tool could not run this check on this model
            errors.append(f"{name}: {type(e).__name__}")
    return flagged, errors


def run_torchtest2(build, bug, variant):
    import torchtest2

    parts = build(bug, **variant)
    model = parts["model"]
    x, y = parts["batch"]
    rep = torchtest2.check_model(
        model, x, y, optimizer=parts["optimizer"],
        forward_fn=lambda m, inputs, targets: training_loss(m, parts, inputs, targets),
        loss_fn=lambda loss, targets: loss,
        eval_forward_fn=lambda m, inputs: logits_of(m, inputs))
    flagged = {r.name for r in rep.failures + rep.warnings}
    return flagged, []


def _train(parts, step_fn):
    model, opt, sched = parts["model"], parts["optimizer"], parts["scheduler"]
    x, y = parts["batch"]
    for _ in range(STEPS):
        step_fn(model, opt, x, y)
        sched.step()


def run_torch_audit(build, bug, variant):
    from torch_audit import audit_dynamic

    parts = build(bug, **variant)
    model = parts["model"]
    with audit_dynamic(model, optimizer=parts["optimizer"], every_n_steps=1) as auditor:
        def step(model, opt, x, y):
            opt.zero_grad(set_to_none=True)
            if model.config.output == "hf":
                loss = auditor.forward(x, labels=y).loss
            else:
                loss = auditor.forward(x, y)[1]
            auditor.backward(loss)
            auditor.optimizer_step()

        _train(parts, step)
    result = auditor.finish(report=False)
    flagged = {f.rule_id for f in result.findings if str(getattr(f.severity, "value", f.severity)).upper()
               in ("WARN", "WARNING", "ERROR", "FATAL")}
    return flagged, []


def run_torcheck(build, bug, variant):
    from torcheck.registry import Registry

    parts = build(bug, **variant)
    model, opt = parts["model"], parts["optimizer"]
    reg = Registry()  # a registry of our own: torcheck's module-level one is global state
    flagged = set()
    try:
        reg.register(opt)
        reg.add_module_changing_check(model, module_name="model")
        # the output checks watch the logits (the model itself returns a (logits, loss) tuple)
        reg.add_module_nan_check(model.lm_head, module_name="lm_head")
        reg.add_module_inf_check(model.lm_head, module_name="lm_head")

        def step(model, opt, x, y):
            opt.zero_grad(set_to_none=True)
            training_loss(model, parts, x, y).backward()
            opt.step()

        _train(parts, step)
    except RuntimeError as e:
        if "torcheck" not in "".join(traceback.format_tb(e.__traceback__)):
            raise
        flagged.add(str(e).strip().splitlines()[0][:60])
    return flagged, []


TOOLS = {
    "doctor": (run_doctor, "tensorlite"),
    "neural-net-checklist": (run_checklist, "neural_net_checklist"),
    "torchtest2": (run_torchtest2, "torchtest2"),
    "torch-audit": (run_torch_audit, "torch_audit"),
    "torcheck": (run_torcheck, "torcheck"),
}


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run(tool, fn, build, bug, variant):
    try:
        with quiet():
            return fn(build, bug, variant)
    except Exception as e:
        return None, [f"{type(e).__name__}: {' '.join(str(e).split())[:80]}"]


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bugs", default=None, help="comma-separated bug names (default: all)")
    ap.add_argument("--tools-path", default=str(ROOT / ".bench_tools"),
                    help="a folder the tools were pip-installed into with --target (default: .bench_tools)")
    ap.add_argument("--tools", default=None, help=f"comma-separated tools to run (default: all: {', '.join(TOOLS)})")
    ap.add_argument("--json", default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)
    if os.path.isdir(args.tools_path):
        sys.path.insert(0, args.tools_path)
    sys.path.insert(0, str(ROOT / "tests"))
    torch = _torch()
    torch.set_num_threads(1)
    from user_models import torch_lm

    bugs = args.bugs.split(",") if args.bugs else list(torch_lm.BUGS)
    tools = {}
    wanted = args.tools.split(",") if args.tools else list(TOOLS)
    unknown = [t for t in wanted if t not in TOOLS]
    if unknown:
        ap.error(f"--tools: unknown {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    for name, (fn, module) in TOOLS.items():
        if name not in wanted:
            continue
        if _installed(module):
            tools[name] = fn
        else:
            print(f"{name}: not installed, skipped (pip install --no-deps --target .bench_tools {name})")
    t_start = time.perf_counter()
    healthy: dict = {}
    results: dict = {b: {} for b in bugs}
    false_alarms: dict = {t: [] for t in tools}
    errors: dict = {t: [] for t in tools}
    seconds: dict = {t: 0.0 for t in tools}
    for bug in bugs:
        variant = torch_lm.BUGS[bug][1]
        key = json.dumps(variant, sort_keys=True)
        for tool, fn in tools.items():
            if (tool, key) not in healthy:
                t0 = time.perf_counter()
                flags, errs = _run(tool, fn, torch_lm.build, None, variant)
                seconds[tool] += time.perf_counter() - t0
                healthy[tool, key] = flags or set()
                if flags:
                    false_alarms[tool].append(f"{key}: {', '.join(sorted(flags))}")
                if errs:
                    errors[tool].append(f"healthy {key}: {errs[0]}")
            t0 = time.perf_counter()
            flags, errs = _run(tool, fn, torch_lm.build, bug, variant)
            seconds[tool] += time.perf_counter() - t0
            if flags is None:
                results[bug][tool] = "error"
                errors[tool].append(f"{bug}: {errs[0]}")
                continue
            new = flags - healthy[tool, key]
            results[bug][tool] = sorted(new)
            if errs:
                errors[tool].append(f"{bug}: {errs[0]}")

    names = list(tools)
    others = [t for t in names if t != "doctor"]
    w = max(len(b) for b in bugs) + 2
    head = f"{'bug':<{w}}" + "".join(f"{t:>22}" for t in names) + (f"{'any of the others':>19}" if others else "")
    print(head)
    totals = {t: 0 for t in names}
    any_total = 0
    for bug in bugs:
        row, hit_any = f"{bug:<{w}}", False
        for t in names:
            r = results[bug][t]
            found = isinstance(r, list) and bool(r)
            totals[t] += found
            hit_any |= found and t != "doctor"
            row += f"{('found' if found else 'error' if r == 'error' else '-'):>22}"
        any_total += hit_any
        print(row + (f"{'found' if hit_any else '-':>19}" if others else ""))
    print(f"{'found (of ' + str(len(bugs)) + ')':<{w}}" + "".join(f"{totals[t]:>22}" for t in names)
          + (f"{any_total:>19}" if others else ""))
    print(f"{'healthy variants flagged':<{w}}" + "".join(f"{len(false_alarms[t]):>22}" for t in names))
    print(f"{'runs with errors':<{w}}" + "".join(f"{len(errors[t]):>22}" for t in names))
    print(f"{'seconds':<{w}}" + "".join(f"{seconds[t]:>22.0f}" for t in names))
    for t in names:
        for line in false_alarms[t]:
            print(f"  {t} flags the healthy variant {line}")
        for line in errors[t]:
            print(f"  {t} error: {line}")
    print(f"total {time.perf_counter() - t_start:.0f} s; torch {torch.__version__}, 1 thread")
    out = {"results": results, "totals": totals, "any_of_the_others": any_total,
           "false_alarms": false_alarms, "errors": errors, "seconds": seconds}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
