"""pytest under mpirun: every rank runs the same tests; terse.torch is initialised once."""
import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def hvd():
    import torch
    torch.set_num_threads(1)
    import terse.torch as hvd
    hvd.init()
    yield hvd
    hvd.shutdown()
