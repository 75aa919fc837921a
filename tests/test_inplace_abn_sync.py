"""InPlaceABNSync (inplace_abn/sync.py): DDP over gloo with unequal per-rank batches, and the
DataParallel master/worker exchange with threads standing in for replicas. The oracle is one
process running InPlaceABN on the concatenated batch (itself checked against F.batch_norm in
test_inplace_abn.py) plus the textbook pooled mean/variance."""
import datetime
import os
import threading

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from inplace_abn import InPlaceABN, InPlaceABNSync, sync
from inplace_abn import backend as iabn_backend

C, SIZES = 4, (3, 5)


@pytest.fixture(autouse=True)
def _torch_backend():
    iabn_backend.set_backend("torch")
    yield
    iabn_backend.set_backend(None)


def make_batches(sizes=SIZES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, C, 3, 5, generator=gen, dtype=torch.float64) * (i + 1) + i
          for i, n in enumerate(sizes)]
    gs = [torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in xs]
    return xs, gs


def init_module(m):
    with torch.no_grad():
        m.weight.copy_(torch.tensor([1.2, -0.5, 0.8, 2.0]))
        m.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    return m


def full_batch_reference(xs, gs, activation="leaky_relu"):
    """One process, InPlaceABN on the concatenated batch: outputs / dx split back per rank."""
    m = init_module(InPlaceABN(C, activation=activation).double())
    x = torch.cat(xs).requires_grad_()
    out = m(x * 1)
    snapshot = out.detach().clone()
    out.backward(torch.cat(gs))
    split = [n.shape[0] for n in xs]
    return dict(out=snapshot.split(split), dx=x.grad.split(split), rm=m.running_mean,
                rv=m.running_var, dw=m.weight.grad, db=m.bias.grad)


def run_replica(m, x, g):
    xl = x.clone().requires_grad_()
    out = m(xl * 1)
    snapshot = out.detach().clone()
    out.backward(g)
    return dict(out=snapshot, dx=xl.grad, rm=m.running_mean.clone(), rv=m.running_var.clone(),
                dw=m.weight.grad.clone(), db=m.bias.grad.clone())


def check_against_reference(results, ref):
    close = dict(rtol=0, atol=1e-10)
    for r, res in enumerate(results):
        torch.testing.assert_close(res["out"], ref["out"][r], **close)
        torch.testing.assert_close(res["dx"], ref["dx"][r], **close)
        torch.testing.assert_close(res["rm"], ref["rm"], **close)
        torch.testing.assert_close(res["rv"], ref["rv"], **close)
    # parameter gradients are per-process contributions; their sum is the global gradient
    torch.testing.assert_close(sum(res["dw"] for res in results), ref["dw"], **close)
    torch.testing.assert_close(sum(res["db"] for res in results), ref["db"], **close)


# ---- DDP (torch.distributed, gloo, two CPU processes) ----------------------------------------

def _ddp_worker(rank, world, store, xs, gs, out_dir):
    iabn_backend.set_backend("torch")
    torch.set_num_threads(1)
    # a file store in the test's own folder: no TCP port to pick, so nothing can race for one
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        m = init_module(InPlaceABNSync(C).double())
        assert isinstance(sync.select_reducer(m, xs[rank], True), sync.DistributedReducer)
        torch.save(run_replica(m, xs[rank], gs[rank]), os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_unequal_batches_equal_full_batch(tmp_path):
    xs, gs = make_batches()
    store = tmp_path / "store"
    mp.spawn(_ddp_worker, args=(2, str(store), xs, gs, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    check_against_reference(results, full_batch_reference(xs, gs))


# ---- DataParallel exchange (threads stand in for replicas) ----------------------------------

def make_replicas(m, count):
    """What nn.DataParallel.replicate does to the module, minus the device copies."""
    replicas = []
    for _ in range(count):
        r = m._replicate_for_data_parallel()
        r.weight = nn.Parameter(m.weight.detach().clone())
        r.bias = nn.Parameter(m.bias.detach().clone())
        r.running_mean, r.running_var = m.running_mean.clone(), m.running_var.clone()
        replicas.append(r)
    return replicas


def run_threads(fns, timeout=60):
    results, errors = [None] * len(fns), []

    def target(i):
        try:
            results[i] = fns[i]()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "replica threads hung"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def threaded_sync(monkeypatch):
    """Let CPU tensors take the DataParallel exchange (on GPUs it is the CUDA path)."""
    monkeypatch.setattr(sync, "dp_sync_enabled", lambda x: True)
    monkeypatch.setenv("IABN_SYNC_TIMEOUT", "20")


@pytest.mark.parametrize("sizes", [(3, 5), (2, 1, 4)])
def test_dataparallel_exchange_gives_global_batch(threaded_sync, sizes):
    xs, gs = make_batches(sizes)
    m = init_module(InPlaceABNSync(C, devices=[0, 1, 2, 3]).double())  # more devices than replicas
    replicas = make_replicas(m, len(sizes))
    results = run_threads([lambda r=r, x=x, g=g: run_replica(r, x, g)
                           for r, x, g in zip(replicas, xs, gs)])
    check_against_reference(results, full_batch_reference(xs, gs))


def test_pooled_statistics_formula():
    """combine_stats equals the statistics of the concatenation (unequal counts)."""
    xs, _ = make_batches((3, 5, 1))
    items = [(x.numel() // C, x.transpose(0, 1).reshape(C, -1).mean(1),
              x.transpose(0, 1).reshape(C, -1).var(1, correction=0)) for x in xs]
    n, mean, var = sync.combine_stats(items)
    full = torch.cat(xs).transpose(0, 1).reshape(C, -1)
    assert n == full.shape[1]
    torch.testing.assert_close(mean, full.mean(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(var, full.var(1, correction=0), rtol=0, atol=1e-12)


def test_layer_called_twice_per_forward(threaded_sync):
    """A shared module (OCNet's f_query is f_key) exchanges once per call, in order."""
    xs, gs = make_batches((2, 3))
    m = init_module(InPlaceABNSync(C).double())

    def twice(r, x, g):
        xl = x.clone().requires_grad_()
        out = r(r(xl * 1) * 0.5)
        out.backward(g)
        return out.detach(), xl.grad

    got = run_threads([lambda r=r, x=x, g=g: twice(r, x, g) for r, x, g in
                       zip(make_replicas(m, 2), xs, gs)])
    ref_m = init_module(InPlaceABN(C).double())
    x = torch.cat(xs).requires_grad_()
    out = ref_m(ref_m(x * 1) * 0.5)
    out.backward(torch.cat(gs))
    torch.testing.assert_close(torch.cat([o for o, _ in got]), out.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.cat([d for _, d in got]), x.grad, rtol=0, atol=1e-10)


def test_new_replicate_round_starts_new_group(threaded_sync):
    """Each replicate() round (2, 3, then 1 replicas) synchronises over exactly its own replicas:
    every round equals the full-batch oracle of that round's batches."""
    m = init_module(InPlaceABNSync(C, devices=[0, 1]).double())
    for seed, count in enumerate((2, 3, 1)):
        xs, gs = make_batches((2, 1, 3)[:count], seed=seed)
        replicas = make_replicas(m, count)
        assert replicas[0]._dp_member.group.size == count
        results = run_threads([lambda r=r, x=x, g=g: run_replica(r, x, g)
                               for r, x, g in zip(replicas, xs, gs)])
        check_against_reference(results, full_batch_reference(xs, gs))


def test_missing_replica_times_out_with_clear_error(threaded_sync, monkeypatch):
    monkeypatch.setenv("IABN_SYNC_TIMEOUT", "1")
    m = init_module(InPlaceABNSync(C).double())
    replicas = make_replicas(m, 2)
    xs, gs = make_batches((2, 2))
    with pytest.raises(RuntimeError, match="waited 1 s"):  # only replica 0 runs
        run_threads([lambda: run_replica(replicas[0], xs[0], gs[0])])


def test_cpu_replicas_take_unsynchronised_path():
    """Without the test hook, CPU replicas never wait on each other: each is plain InPlaceABN."""
    xs, gs = make_batches((3, 5))
    m = init_module(InPlaceABNSync(C, devices=[0, 1]).double())
    replicas = make_replicas(m, 2)
    for r, x, g in zip(replicas, xs, gs):  # sequentially, in one thread: would deadlock if synced
        got = run_replica(r, x, g)
        ref = full_batch_reference([x], [g])
        torch.testing.assert_close(got["out"], ref["out"][0], rtol=0, atol=1e-10)


@pytest.mark.skipif(torch.cuda.is_available(), reason="DataParallel moves inputs to the GPU there")
def test_dataparallel_wrapper_on_cpu():
    m = init_module(InPlaceABNSync(C).double())
    xs, _ = make_batches((3,))
    out = nn.DataParallel(m)(xs[0].clone())
    torch.testing.assert_close(out, full_batch_reference(xs, [torch.zeros_like(xs[0])])["out"][0])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_dataparallel_exchange_on_cuda_tensors(monkeypatch):
    """The real CUDA path (no test hook): replicas in threads exchange forward statistics.
    (Backward is not run: on one GPU all replicas share one autograd device thread.)"""
    monkeypatch.setenv("IABN_SYNC_TIMEOUT", "20")
    xs, _ = make_batches((3, 5))
    m = init_module(InPlaceABNSync(C).double()).cuda()
    replicas = make_replicas(m, 2)

    def fwd(r, x):
        with torch.no_grad():
            return r(x.cuda().clone()).cpu(), r.running_var.cpu()

    got = run_threads([lambda r=r, x=x: fwd(r, x) for r, x in zip(replicas, xs)])
    ref = full_batch_reference(xs, [torch.zeros_like(x) for x in xs])
    for r, (out, rv) in enumerate(got):
        torch.testing.assert_close(out, ref["out"][r], rtol=0, atol=1e-10)
        torch.testing.assert_close(rv, ref["rv"], rtol=0, atol=1e-10)
