"""The break-it lab (examples/break_it): the committed runs, their answer key, the dashboards the
docs serve, and the script that regenerates them."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tensorlite import faults
from tensorlite.debug import diagnose, load_metrics
from tensorlite.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "examples" / "break_it"
DOCS = ROOT / "docs" / "labs" / "break-it"
EXPECTED = {"causal_mask_open": "broken_causal_mask", "init_x100": "bad_init", "no_warmup": "missing_warmup"}
RUNS = ("01", "02", "03")


def _solutions() -> dict:
    """{run: fault} from the table in solutions.md."""
    text = (LAB / "solutions.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d\d) \| `([a-z0-9_]+)` \|.*\| `([a-z_]+)` \|$", text, re.M)
    return {run: (fault, finding) for run, fault, finding in rows}


def _script():
    spec = importlib.util.spec_from_file_location("break_it_run", LAB / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_runs_are_small_and_complete():
    for name in (*RUNS, "reference"):
        files = sorted(p.name for p in (LAB / name).iterdir())
        committed = [f for f in files if f != "dashboard.html"]  # dashboards are drawn, not committed
        assert committed == ["config.json", "metrics.jsonl"], name
        assert sum((LAB / name / f).stat().st_size for f in committed) < 400_000


def test_solutions_md_matches_the_configs_and_the_script():
    sol = _solutions()
    assert sorted(sol) == list(RUNS)
    assert {fault for fault, _ in sol.values()} == set(EXPECTED)
    assert {run: fault for run, (fault, _) in sol.items()} == _script().RUNS
    for run, (fault, finding) in sol.items():
        cfg = json.loads((LAB / run / "config.json").read_text())
        assert cfg["faults"] == [fault] and EXPECTED[fault] == finding
        assert fault in faults.FAULTS and finding in faults.get(fault).diagnoses
    assert json.loads((LAB / "reference" / "config.json").read_text())["faults"] == []


@pytest.mark.parametrize("run", RUNS)
def test_diagnose_names_each_committed_run(run):
    fault, finding = _solutions()[run]
    d = diagnose(LAB / run)
    assert d.name == finding, str(d)


def test_the_reference_run_is_healthy():
    assert diagnose(LAB / "reference").healthy


def test_the_names_and_dashboards_do_not_give_the_answer_away():
    drawn = _script().dashboards(LAB)
    assert set(drawn) == {*RUNS, "reference"} and 'data-name="healthy"' in drawn["reference"]
    for run in RUNS:
        html = drawn[run]
        assert 'data-name="hidden"' in html
        for fault, finding in EXPECTED.items():
            assert fault not in html and finding not in html, (run, fault)
        assert "warmup=" not in html and "faults=" not in html
        assert (DOCS / f"{run}.png").stat().st_size > 10_000


def test_the_course_signatures_in_the_committed_runs():
    facts = {name: diagnose(LAB / name).facts for name in (*RUNS, "reference")}
    sol = {fault: run for run, (fault, _) in _solutions().items()}
    init, warm, mask = (facts[sol[f]] for f in ("init_x100", "no_warmup", "causal_mask_open"))
    ref = facts["reference"]
    assert init["act_rms_first"] > 1000 * ref["act_rms_first"] and init["nan_step"] is None
    assert warm["lr_first"] == warm["lr_max"] and ref["lr_first"] < 0.1 * ref["lr_max"]
    assert mask["final_loss"] < 0.1 and abs(mask["final_val_loss"] - mask["final_loss"]) < 0.05
    assert mask["dead_heads"] >= 2 and ref["dead_heads"] == 0
    m = load_metrics(LAB / sol["no_warmup"])
    _, loss = m.series("loss")
    assert loss[:8].argmin() == 6 and loss[8] > 1.15 * loss[6]  # the early V: down to step 6, back up at 8


def test_the_script_regenerates_the_runs_in_quick_mode(tmp_path, capsys):
    mod = _script()
    times = mod.main(["--quick", "--out", str(tmp_path), "--jobs", "1"])
    assert set(times) == {"reference", *RUNS, "total"}
    for name in ("reference", *RUNS):
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert files == ["config.json", "dashboard.html", "metrics.jsonl"]
        cfg = TrainConfig.from_dict(json.loads((tmp_path / name / "config.json").read_text()))
        assert cfg.optim.steps == mod.QUICK["steps"]
    assert 'data-name="hidden"' in (tmp_path / "01" / "dashboard.html").read_text()
    assert "total:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mod.main(["--quick"])  # the quick runs never overwrite the committed ones
