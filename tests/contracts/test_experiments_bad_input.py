"""The scripts under experiments/ are user-facing: a bad flag is one line naming it, exit status 2,
no traceback, and nothing written (run as a user runs them, in a fresh working folder)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_of(script: str) -> str:
    """``bench_krylov.py`` → ``experiments.benchmarks.bench_krylov`` (how the scripts are run)."""
    folder = "benchmarks" if script.startswith("bench_") else "studies"
    assert (ROOT / "experiments" / folder / script).is_file(), script
    return f"experiments.{folder}.{script[:-3]}"

CASES = [
    ("bench_preconditioners.py", ["--grids", "bogus"], "--grids: unknown bogus"),
    ("bench_preconditioners.py", ["--levels", "bogus"], "--levels: unknown bogus"),
    ("bench_preconditioners.py", ["--device", "cuda:7"], "--device"),
    ("bench_preconditioners.py", ["--ckpt2d", "absent.ckpt"], "no such checkpoint"),
    ("bench_preconditioners.py", ["--npsolver", "cfg.yaml"], "not a torch checkpoint"),
    ("learning_to_relax.py", ["--sequences", "bogus"], "--sequences: unknown bogus"),
    ("learning_to_relax.py", ["--workers", "0"], "--workers must be >= 1"),
    ("learning_to_relax.py", ["--systems", "0"], "--systems must be >= 1"),
    ("learning_to_relax.py", ["--resolution", "0"], "--resolution must be >= 8"),
    ("difficulty_transfer.py", ["--budgets", "inf"], "need budgets in (0, 10000]"),
    ("difficulty_transfer.py", ["--budgets", "x"], "comma-separated numbers"),
    ("difficulty_transfer.py", ["--test", "0"], "--test and --pilot must be >= 1"),
    ("difficulty_transfer.py", ["--horizon", "1,2"], "--horizon must be t_end,interval,warmup"),
    ("gp_hm_study.py", ["--problems", "bogus"], "unknown problem 'bogus'"),
    ("gp_hm_study.py", ["--kernels", "stm+bogus"], "--kernels: unknown stm+bogus"),
    ("gp_hm_study.py", ["--decay", "0"], "--decay in (0, 1]"),
    ("gp_hm_study.py", ["--problems", "poisson-ball-2d"], "needs a box domain"),
    ("gp_hm_study.py", ["--problems", "absent_module:thing"], "absent_module"),
    ("fkpinn_study.py", ["--problems", "bogus"], "unknown problem 'bogus'"),
    ("fkpinn_study.py", ["--baseline", "both"], "invalid choice"),
    ("npsolver_generalisation.py", ["--test", "0"], "--test in 1..1000"),
    ("npsolver_generalisation.py", ["--base", "absent"], "--base absent is not a folder"),
    ("rollout_study.py", ["--datasets", "bogus"], "--datasets: unknown bogus"),
    ("rollout_study.py", ["--methods", "bogus"], "--methods: unknown bogus"),
    ("rollout_study.py", ["--base", "absent"], "--base absent is not a folder"),
    ("npsolver_study.py", ["--base", "absent"], "--base absent is not a folder"),
    ("lsm_study.py", ["--base", "absent"], "--base absent is not a folder"),
    ("bench_feynman_kac.py", ["--dts", "0"], "--dts must lie in (0, 0.01]"),
    ("bench_feynman_kac.py", ["--dims", "3"], "--dims must be from 2, 5, 10"),
    ("bench_feynman_kac.py", ["--points", "0"], "--points >= 1"),
    ("bench_feynman_kac.py", ["--paths", "a"], "comma-separated numbers"),
]


@pytest.mark.parametrize("script,args,message", CASES, ids=[f"{s}:{' '.join(a)}" for s, a, _ in CASES])
def test_experiment_scripts_refuse_bad_flags_in_one_line(tmp_path, script, args, message):
    (tmp_path / "cfg.yaml").write_text("a: 1\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # as from the repository root, but writing nowhere near it
    done = subprocess.run([sys.executable, "-m", module_of(script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    errors = [line for line in done.stderr.splitlines() if ": error:" in line]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(errors) == 1, done.stderr[-2000:]
    assert message in errors[0], errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "the script left files behind"
