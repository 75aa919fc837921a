"""Test helper: what autograd saves for backward, counted by storage (shared by the memory tests)."""
from torch.autograd.graph import saved_tensors_hooks


def saved_storages(fn, keep=None):
    """Run ``fn()`` and return ``{storage data_ptr: nbytes}`` of every tensor autograd packs for
    backward meanwhile (parameters included; ``keep(t)`` False skips a tensor). A storage saved by
    several ops counts once."""
    storages = {}

    def pack(t):
        if keep is None or keep(t):
            s = t.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
        return t
    with saved_tensors_hooks(pack, lambda t: t):
        fn()
    return storages
