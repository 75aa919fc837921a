"""train.py: model/weights setup rules, and the failures of a run through the real command line (a
subprocess where the message and the exit status matter): divergence, interrupts, the snapshot-dir lock,
leftover temporary files, broken resume files, a dead or frozen DDP rank. Exact resume: test_resume.py."""
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import network
import train
from dataset.synthetic import make_synthetic_cityscapes
from network.resnet import Bottleneck
from utils.errors import ConfigError
from utils.options import parse_args

LOG = logging.getLogger("test")


def test_missing_pretrained_is_an_error_naming_the_flag(tmp_path):
    args = parse_args("train", ["--restore-from", str(tmp_path / "none.pth"), "--method", "baseline"])
    with pytest.raises(FileNotFoundError, match=r"--restore-from .*none\.pth.*--allow-random-init"):
        train.build_model(args, LOG)


def test_random_init_and_zero_init_residual(tmp_path, caplog):
    args = parse_args("train", ["--restore-from", str(tmp_path / "none.pth"), "--method", "baseline",
                                "--allow-random-init", "--zero-init-residual"])
    with caplog.at_level(logging.WARNING):
        model = train.build_model(args, LOG)
    assert "RANDOM init" in caplog.text
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 33  # ResNet-101: 3 + 4 + 23 + 3
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in blocks)
    assert torch.all(model.bn3.weight == 1)  # the stem's bn3 is not a bottleneck


def test_backbone_memory_flag_reaches_the_model(tmp_path):
    none = str(tmp_path / "none.pth")
    args = parse_args("train", ["--restore-from", none, "--allow-random-init", "--backbone-memory",
                                "recompute"])
    model = train.build_model(args, LOG)
    assert model.memory_mode == "recompute"
    assert all(b.memory_mode == "recompute" for b in model.modules() if isinstance(b, Bottleneck))
    assert train.build_model(parse_args("train", ["--restore-from", none, "--allow-random-init"]),
                             LOG).memory_mode == "relu"  # the default
    args = parse_args("train", ["--network", "resnet50", "--method", "ocr", "--restore-from", none,
                                "--allow-random-init", "--backbone-memory", "relu"])
    ocr = train.build_model(args, LOG)
    assert all(b.memory_mode == "relu" for b in ocr.modules() if isinstance(b, Bottleneck))
    args.backbone_memory = "recompute"  # InPlace-ABN only: refused for the OCR models
    with pytest.raises(ConfigError, match="--backbone-memory recompute"):
        train.build_model(args, LOG)


def test_start_iters_loads_a_full_model(tmp_path):
    args = parse_args("train", ["--method", "baseline", "--allow-random-init", "--restore-from",
                                str(tmp_path / "none.pth")])
    donor = train.build_model(args, LOG)
    torch.save(donor.state_dict(), tmp_path / "CS_scenes_5000.pth")
    args = parse_args("train", ["--method", "baseline", "--start-iters", "5000",
                                "--restore-from", str(tmp_path / "CS_scenes_5000.pth")])
    model = train.build_model(args, LOG)
    for key, value in donor.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_unknown_method_lists_the_valid_names(tmp_path):
    args = parse_args("train", ["--method", "base", "--allow-random-init"])  # OCNet issue #13
    with pytest.raises(KeyError, match="resnet101_asp_oc_dsn"):
        train.build_model(args, LOG)


# --- the real command line in a subprocess (message and exit status matter) -------------------------
# The tiny model of tests/tiny_train.py: the model does not matter for these failures.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests", "tiny_train.py")


def cli_env():
    env = dict(os.environ, IABN_BACKEND="torch", PYTHONPATH=ROOT)  # no C++ build for a model without IABN
    env.pop("OCNET_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_cityscapes(str(tmp_path_factory.mktemp("cli") / "data"), n_train=5, n_val=1,
                                     n_test=1, size=(32, 64))


def tiny_argv(data, snap, *extra):
    return ["--network", "tiny", "--method", "seg", "--data-dir", data, "--data-list",
            os.path.join(data, "train.lst"), "--input-size", "24,24", "--batch-size", "2", "--num-workers", "0",
            "--allow-random-init", "--restore-from", "absent.pth", "--snapshot-dir", str(snap),
            "--learning-rate", "0.05", *extra]


def run_cli(args, timeout=180):
    return subprocess.run([sys.executable, TINY, *args], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def one_error(res, *parts):
    """Exit status 2 and exactly 'ERROR: <one line>' + the OCNET_DEBUG hint on stderr, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    lines = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("train:")]  # tqdm
    assert len(lines) == 2 and lines[0].startswith("ERROR: ") and "OCNET_DEBUG=1" in lines[1], res.stderr[-3000:]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def all_tensors_finite(obj):
    if torch.is_tensor(obj):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(all_tensors_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_tensors_finite(v) for v in obj)
    return True


@pytest.mark.slow
def test_divergence_stops_with_one_message_and_writes_nothing_nonfinite(data, tmp_path):
    snap = tmp_path / "snap"
    res = run_cli(tiny_argv(data, snap, "--learning-rate", "1e30", "--num-steps", "8", "--save-pred-every", "1"))
    line = one_error(res, "training diverged at iteration ", "nothing non-finite was written",
                     "Try a lower --learning-rate (now 1e+30, e.g. 1e+29")
    bad = int(line.split("iteration ")[1].split(":")[0])
    assert 0 < bad < 8
    assert f"Last good checkpoint: {snap / f'CS_scenes_{bad - 1}.pth'}, {snap / 'resume.pth'} (iteration {bad})" \
        in line
    files = sorted(p for p in os.listdir(snap) if p.endswith(".pth"))
    assert files == sorted([f"CS_scenes_{i}.pth" for i in range(bad)] + ["resume.pth"])
    for name in files:  # every tensor of every file written
        assert all_tensors_finite(torch.load(snap / name, weights_only=True)), name
    assert torch.load(snap / "resume.pth", weights_only=True)["iteration"] == bad
    assert not [p for p in os.listdir(snap) if ".tmp" in p]


def test_nan_learning_rate_is_refused_at_the_command_line(data, tmp_path):
    res = run_cli(tiny_argv(data, tmp_path / "s", "--learning-rate", "nan"))
    assert res.returncode == 2 and "--learning-rate must be a finite number > 0, got nan" in res.stderr
    assert not (tmp_path / "s").exists()


def _wait_for(path, text, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and text in open(path).read():
            return
        assert proc.poll() is None, open(path).read()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear in {path}")


def run_in_process(args, capsys, monkeypatch):
    """train.py's entry point in this process: (exit status, stdout, stderr) as the CLI would give."""
    from tiny_train import TinySeg
    from utils.cli import run_main
    monkeypatch.setitem(network.NETWORKS, "tiny_seg", TinySeg)
    monkeypatch.delenv("OCNET_DEBUG", raising=False)
    capsys.readouterr()
    status = run_main(lambda: train.main(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


@pytest.mark.slow
def test_sigterm_lock_leftovers_and_resume_flags(data, tmp_path, capsys, monkeypatch):
    """SIGTERM -> 143 after resume.pth; a second run on the same --snapshot-dir is refused naming the first
    one's pid; a killed save's temp file is removed at the next start; a resume with another learning
    rate is refused listing it. (SIGINT -> 130: test_resume.py.)"""
    snap, log = tmp_path / "snap", tmp_path / "a.log"
    argv = tiny_argv(data, snap, "--num-steps", "100000", "--save-pred-every", "50")
    with open(log, "w") as out:
        first = subprocess.Popen([sys.executable, TINY, *argv], cwd=ROOT, env=cli_env(), stdout=out,
                                 stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(log, "iter = 10 of", first)
        second = run_in_process(argv, capsys, monkeypatch)
        one_error(second, f"pid {first.pid} on host", "is in use by another training", str(snap))
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 143
    finally:
        first.kill()
    assert "stopped after iteration" in open(log).read()
    stopped_at = torch.load(snap / "resume.pth", weights_only=True)["iteration"]
    assert stopped_at > 10
    leftover = snap / ".CS_scenes_50.pth.tmp4242"  # what a kill -9 during a save leaves
    leftover.write_bytes(b"\0" * 1000)
    other = run_in_process(argv + ["--resume", "auto", "--learning-rate", "0.1"], capsys, monkeypatch)
    one_error(other, "--learning-rate 0.05 (file) vs 0.1 (now)", "--resume-override learning-rate")
    assert not leftover.exists() and f"removed {leftover}" in other.stdout


@pytest.mark.slow
def test_broken_resume_files_are_one_message(data, tmp_path, capsys, monkeypatch):
    snap = tmp_path / "snap"
    assert run_in_process(tiny_argv(data, snap, "--num-steps", "1"), capsys, monkeypatch).returncode == 0
    resume = snap / "resume.pth"
    good = resume.read_bytes()
    resume.write_bytes(good[: len(good) // 2])
    res = run_cli(tiny_argv(data, snap, "--num-steps", "2", "--resume", "auto"))  # the real CLI, once
    one_error(res, f"resume file (--resume) {resume}: cannot be read", "truncated or corrupt")
    for damage, reason in ((b"", "empty (0 bytes)"), (b"not a checkpoint\n", "not a PyTorch checkpoint")):
        resume.write_bytes(damage)
        res = run_in_process(tiny_argv(data, snap, "--num-steps", "2", "--resume", "auto"), capsys, monkeypatch)
        one_error(res, f"resume file (--resume) {resume}: cannot be read", reason)
    torch.save({"x": open}, resume)  # a pickled builtin: refused, never called
    res = run_in_process(tiny_argv(data, snap, "--num-steps", "2", "--resume", "auto"), capsys, monkeypatch)
    one_error(res, "refused: it stores Python objects (io.open)", "--trust-checkpoint True")


def _rank_pid(agent_pid, rank):
    """The pid of torchrun's worker with RANK=<rank> (a child of the agent)."""
    children = []
    for task in os.listdir(f"/proc/{agent_pid}/task"):
        children += open(f"/proc/{agent_pid}/task/{task}/children").read().split()
    for pid in children:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} among {children}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_dead_or_frozen_ddp_rank_stops_the_other_within_the_timeout(data, tmp_path, how):
    """torchrun, 2 CPU processes (gloo). Rank 1 is killed (kill -9) or frozen (SIGSTOP: alive but silent,
    which torchrun cannot see) mid-training: rank 0 stops with one message within --dist-timeout (plus
    slack), the job exits non-zero, and the last resume file is intact."""
    timeout = 10
    snap, log = tmp_path / "snap", tmp_path / "ddp.log"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", TINY,
           *tiny_argv(data, snap, "--num-steps", "1000000", "--save-pred-every", "20", "--dist-timeout",
                      str(timeout))]
    with open(log, "w") as out:  # --standalone: torchrun picks a free port itself (no race)
        agent = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    rank1 = None
    try:
        _wait_for(log, "iter = 40 of", agent, timeout=180)
        rank1 = _rank_pid(agent.pid, 1)
        start = time.time()
        os.kill(rank1, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        _wait_for(log, "ERROR: rank 0: ", agent, timeout=timeout + 60)
        assert time.time() - start < timeout + 45
        if how == "freeze":
            os.kill(rank1, signal.SIGKILL)  # torchrun would wait 30 s more for the frozen one
        assert agent.wait(timeout=120) != 0
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)  # our own torchrun and its workers
            agent.wait()
    text = open(log).read()
    assert "Another process died or stopped answering" in text and "restart the job with --resume auto" in text
    assert "[rank0]: Traceback" not in text
    state = torch.load(snap / "resume.pth", weights_only=True)
    assert state["iteration"] % 20 == 1 and len(state["rng"]) == 2 and all_tensors_finite(state)
    assert not [p for p in os.listdir(snap) if ".tmp" in p]


def test_the_loop_reads_device_values_only_every_log_every_steps(data, tmp_path, monkeypatch):
    """Host reads (item / tolist / float / bool / int of a tensor) made by train.py or utils/monitor.py
    themselves: one for the start-up agreement, then one per sync point (iterations 0, 10, 20 and the
    last, 24): none per iteration. (On a GPU each of these is a device synchronisation.)"""
    from tiny_train import TinySeg
    monkeypatch.setitem(network.NETWORKS, "tiny_seg", TinySeg)
    watched = {os.path.abspath(train.__file__), os.path.join(ROOT, "utils", "monitor.py")}
    reads = []
    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        real = getattr(torch.Tensor, name)

        def counting(self, *a, _real=real, _name=name, **k):
            caller = sys._getframe(1).f_code.co_filename
            if os.path.abspath(caller) in watched:
                reads.append((_name, os.path.basename(caller), sys._getframe(1).f_lineno))
            return _real(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counting)
    assert train.main(tiny_argv(data, tmp_path / "s", "--num-steps", "25", "--save-pred-every", "1000")) == 0
    monkeypatch.undo()
    assert sum(1 for name, _, _ in reads if name == "tolist") == 4, reads  # LoopMonitor.sync
    assert len(reads) == 5, reads
