"""The XLA backend on PJRT CPU: runs, parity with the CPU backend, graph stability, SPMD.

These run in the XLA environment (`bash backends/xla-env.sh`; `.ci/run` does it) and are skipped
where torch_xla is not installed. Every training runs in its own process (`specc_xla.probe` or
`specc run`): an SPMD runtime with 4 PJRT CPU devices cannot share a process with a 1-device one.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from specc.store.runs import MetricsLog

pytest.importorskip("torch_xla")

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "xla" / "parity.exp"
STEPS, WARMUP = 20, 3
READBACK = {"aten::_local_scalar_dense"}  # `.item()` of a materialized value: the loss reads


def _env() -> dict[str, str]:
    env = dict(os.environ, PJRT_DEVICE="CPU")
    env.pop("CPU_NUM_DEVICES", None)  # the runtime sets it from train.devices
    return env


@functools.cache
def probe(backend: str, profile: str | None, resume_at: int | None = None,
          spec: Path = SPEC) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "specc_xla.probe", str(spec), "--backend", backend,
           "--steps", str(STEPS), "--warmup", str(WARMUP)]
    if profile:
        cmd += ["--profile", profile]
    if resume_at is not None:
        cmd += ["--resume-at", str(resume_at)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def max_rel(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) == STEPS
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


def test_quickstart_runs_on_xla(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "specc.cli.main", "run", "specs/quickstart.exp", "--backend",
         "xla", "--profile", "smoke", "--root", str(tmp_path)],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "via torch-xla" in done.stdout
    (run,) = (tmp_path / "quickstart").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["backend"] == "xla"
    assert manifest["config"]["train"]["shapes"] == "fixed"  # the plan's shape policy
    assert manifest["config"]["train"]["drop_last"] is True
    rows = MetricsLog(run / "metrics.jsonl").rows()
    assert rows[-1]["step"] == 20 and 0 < rows[-1]["loss"] < 6
    # the final model is saved from the host, in Hugging Face format, and loads on the CPU
    assert (run / "final" / "model" / "config.json").exists()


def test_plugin_classifier_matches_the_cpu_backend() -> None:
    """A model, data and metrics written with specc.api (examples/plugin) run in the same
    generic loop on PJRT CPU devices as on the CPU backend, to the same losses."""
    spec = ROOT / "examples" / "plugin" / "classifier.exp"
    xla, cpu = probe("xla", "smoke", spec=spec), probe("cpu", "smoke", spec=spec)
    assert max_rel(xla["losses"], cpu["losses"]) <= 1e-3
    assert xla["losses"][-1] < xla["losses"][0]
    assert {"loss", "accuracy", "confidence", "per_class_accuracy.0"} <= cpu["eval"].keys()
    for key, value in cpu["eval"].items():
        assert xla["eval"][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key


@pytest.mark.parametrize("profile", [None, "accumulate", "buckets", "lora"])
def test_fp32_loss_trajectory_matches_the_cpu_backend(profile: str | None) -> None:
    xla, cpu = probe("xla", profile), probe("cpu", profile)
    assert max_rel(xla["losses"], cpu["losses"]) <= 1e-3
    assert xla["losses"][-1] < xla["losses"][0]  # it trains
    for key, value in cpu["eval"].items():
        assert xla["eval"][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key


def test_bf16_autocast_runs_in_one_graph_close_to_fp32() -> None:
    bf16, fp32 = probe("xla", "bf16"), probe("xla", None)
    rel = max_rel(bf16["losses"], fp32["losses"])
    assert 1e-7 < rel < 2e-2  # autocast changes the numbers a little, and only a little


@pytest.mark.parametrize("profile",
                         [None, "accumulate", "buckets", "lora", "dp", "fsdp", "bf16"])
def test_no_compilation_or_fallback_after_warmup(profile: str | None) -> None:
    x = probe("xla", profile)["xla"]
    assert x["after_steps"]["compiles"] == x["at_warmup"]["compiles"], "the step recompiled"
    assert x["after_second_eval"]["compiles"] == x["after_first_eval"]["compiles"], \
        "evaluation recompiled"
    assert set(x["after_second_eval"]["fallback_ops"]) <= READBACK
    # the probe reads the loss once a step: one device-to-host transfer each, nothing else,
    # and the only op XLA runs on the host is that read (`.item()` in the step closure)
    reads = STEPS - WARMUP
    assert x["after_steps"]["transfers_from_device"] - x["at_warmup"]["transfers_from_device"] \
        == reads
    item = "aten::_local_scalar_dense"
    assert x["after_steps"]["fallback_counts"][item] - \
        x["at_warmup"]["fallback_counts"].get(item, 0) == reads


@pytest.mark.parametrize("profile", ["dp", "fsdp"])
def test_four_devices_match_one(profile: str) -> None:
    many, one = probe("xla", profile), probe("xla", None)
    assert "4 devices" in many["device"]
    layout = many["param_sharding"]
    if profile == "fsdp":  # FSDPv2: the parameters are sharded over the fsdp axis
        assert layout.get("sharded", 0) > 0
    else:  # data parallel: every parameter replicated on every device
        assert layout == {"replicated": sum(layout.values())}
    assert max_rel(many["losses"], one["losses"]) <= 1e-4
    assert many["eval"]["loss"] == pytest.approx(one["eval"]["loss"], rel=1e-4)


def test_checkpoint_and_resume_continue_the_same_trajectory() -> None:
    """A checkpoint saved from the device (copied to the host) and loaded back into a fresh
    XLA trainer: the resumed steps are the steps an uninterrupted run takes."""
    straight, resumed = probe("xla", None), probe("xla", None, resume_at=10)
    assert max_rel(resumed["losses"], straight["losses"]) <= 1e-5


def _script(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True,
                          text=True, env=_env(), cwd=ROOT, timeout=300)


def test_eap_ig_scores_on_xla_match_the_cpu() -> None:
    """The circuit code (hook-free gradient probes) runs unchanged on an XLA device."""
    done = _script("""
        import json, torch, torch_xla
        from specc.circuits.attribute import Attributor
        from tests.test_circuits import _model
        device = torch_xla.device()  # before any autograd: the engine learns the XLA device
        model = _model("gpt2").eval()
        g = torch.Generator().manual_seed(0)
        pairs = []
        for _ in range(16):
            clean = torch.randint(3, 50, (6,), generator=g).tolist()
            corrupt = clean[:3] + torch.randint(3, 50, (3,), generator=g).tolist()
            pairs.append((clean, corrupt, int(torch.randint(3, 50, (1,), generator=g))))
        cpu = Attributor(model, pairs, batch=8).eap_ig(3)
        xla = Attributor(model.to(device), pairs, batch=8).eap_ig(3).cpu()
        err = float((xla - cpu).abs().max() / cpu.abs().max())
        print(json.dumps({"rel": err}))
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["rel"] < 1e-4


def test_an_unforeseen_shape_exceeds_the_graph_budget() -> None:
    done = _script("""
        import torch
        from specc_xla.backend import XlaRuntime
        rt = XlaRuntime({"devices": 1})
        rt.wrap(torch.nn.Linear(4, 4), shapes=1)  # budget: 1 shape + 1 warm-up graph
        step = rt.compile_step(lambda x: (x * 2).sum())
        for n in (3, 4):
            step(torch.ones(n, device=rt.device))
        print("two graphs ok", flush=True)
        step(torch.ones(5, device=rt.device))
        print("three graphs ran")
    """)
    assert "two graphs ok" in done.stdout
    assert "three graphs ran" not in done.stdout
    assert done.returncode != 0 and "graph" in done.stderr.lower()


def test_a_host_read_inside_the_step_is_an_error() -> None:
    done = _script("""
        import torch
        from specc_xla.backend import XlaRuntime
        rt = XlaRuntime({"devices": 1})
        step = rt.compile_step(lambda x: x * float(x.sum().item()))
        step(torch.ones(3, device=rt.device))
        print("ran")
    """)
    assert "ran" not in done.stdout and done.returncode != 0
