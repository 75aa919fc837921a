"""scripts/test.sh: `--quick` deselects the `slow` tests and keeps the rest. Checked by collecting
(pytest --collect-only), so no test runs twice."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _collect(*args):
    """Test ids that ``sh scripts/test.sh ARGS`` would run."""
    res = subprocess.run(["sh", "scripts/test.sh", *args, "--collect-only", "-p", "no:cacheprovider"],
                         cwd=ROOT, env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return {line.strip() for line in res.stdout.splitlines() if "::" in line}


@pytest.mark.slow  # two collections of the whole suite
def test_quick_skips_the_slow_tests_only():
    quick, slow = _collect("--quick"), _collect("-m", "slow")
    assert quick and slow and not quick & slow
    assert "tests/test_scripts.py::test_eval_outputs" in slow                     # module-level mark
    assert any(t.startswith("tests/test_network.py::test_forward_backward_small") for t in slow)
    assert "tests/test_schedule.py::test_adjust_sets_every_group_and_fix_lr" in quick
    assert "tests/test_network.py::test_baseline_has_no_attention_option" in quick
