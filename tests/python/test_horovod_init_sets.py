"""hvd.init(process_sets=[...]) in a fresh process (mpirun, 3 ranks): the sets are registered
at init, with the same ids on every rank, and usable at once."""
import torch


def test_init_with_process_sets():
    import terse.torch as hvd
    first, rest = hvd.ProcessSet([0, 2]), hvd.ProcessSet([1])
    hvd.init(process_sets=[first, rest])
    try:
        r = hvd.rank()
        assert (first.process_set_id, rest.process_set_id) == (1, 2)
        mine = first if r in (0, 2) else rest
        assert mine.included() and mine.size() == len(mine.ranks)
        s = hvd.allreduce(torch.tensor([r]), op=hvd.Sum, process_set=mine)
        assert s.item() == sum(mine.ranks)
        assert hvd.allreduce(torch.tensor([1]), op=hvd.Sum).item() == hvd.size()
        assert hvd.remove_process_set(first) and first.process_set_id is None
    finally:
        hvd.shutdown()
