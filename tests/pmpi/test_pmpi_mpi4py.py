"""mpi4py under libterse_pmpi: the same results with and without LD_PRELOAD.

mpirun -np N [-x LD_PRELOAD=libterse_pmpi.so] python3 test_pmpi_mpi4py.py
A plain mpi4py program: numpy buffers of every dtype terse reduces, MPI_IN_PLACE, the
lowercase (pickle) API, split and dup communicators, Iallreduce with Wait and Test, a derived
datatype. Exits nonzero on any rank's failure."""
import ctypes
import os
import sys

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
failures = []
threshold = int(os.environ.get("TERSE_PMPI_THRESHOLD", "1048576"))


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"rank {rank}: check failed: {what}", file=sys.stderr, flush=True)


def preloaded():
    """Is MPI_Allreduce libterse_pmpi's? (dladdr on the symbol the process resolves.)"""
    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                    ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
    libdl = ctypes.CDLL(None)
    addr = ctypes.cast(libdl.MPI_Allreduce, ctypes.c_void_p)
    info = DlInfo()
    libdl.dladdr(addr, ctypes.byref(info))
    return b"libterse_pmpi" in (info.fname or b"")


check(preloaded() == (os.environ.get("TERSE_TEST_PRELOADED") == "1"),
      "preload state differs from TERSE_TEST_PRELOADED")

# exact sums/min/max/prod: small integers in every dtype
n = threshold // 4 + 1000
for dtype in (np.float32, np.float64, np.int8, np.uint8, np.int16, np.int32, np.int64,
              np.uint32, np.uint64):
    i = np.arange(n)
    for op, x, fold in ((MPI.SUM, lambda r: (r * 3 + i) % 7, np.add),
                        (MPI.MAX, lambda r: (r * 37 + i * 11) % 101, np.maximum),
                        (MPI.MIN, lambda r: (r * 37 + i * 11) % 101, np.minimum),
                        (MPI.PROD, lambda r: 1 + (r + i) % 2, np.multiply)):
        want = x(0).astype(dtype)
        for r in range(1, size):
            want = fold(want, x(r).astype(dtype)).astype(dtype)
        out = np.empty(n, dtype)
        world.Allreduce(x(rank).astype(dtype), out, op=op)
        check(np.array_equal(out, want), f"Allreduce {np.dtype(dtype).name} {op}")
        buf = x(rank).astype(dtype)
        world.Allreduce(MPI.IN_PLACE, buf, op=op)
        check(np.array_equal(buf, want), f"Allreduce in place {np.dtype(dtype).name} {op}")

# random floats: bit-identical on every rank, close to the order-free sum
rng = np.random.default_rng(rank)
a = rng.standard_normal(1 << 18).astype(np.float32)
out = np.empty_like(a)
world.Allreduce(a, out, op=MPI.SUM)
ref = world.bcast(out if rank == 0 else None, root=0)
check(np.array_equal(out.view(np.uint32), ref.view(np.uint32)), "random sum not identical")
total = world.allreduce(a.astype(np.float64).sum(), op=MPI.SUM)
check(abs(float(out.astype(np.float64).sum()) - total) < 1e-2 * size, "random sum off")

# the pickle API (small, MPI's) and a large object
check(world.allreduce(rank, op=MPI.SUM) == size * (size - 1) // 2, "lowercase allreduce")

# sub-communicators
half = world.Split(rank % 2, rank)
dup = half.Dup()
for c, name in ((half, "split"), (dup, "dup of split"), (world.Dup(), "dup of world")):
    v = np.full(n, float(c.Get_rank() + 1), np.float64)
    c.Allreduce(MPI.IN_PLACE, v, op=MPI.SUM)
    s = c.Get_size()
    check(np.all(v == s * (s + 1) / 2), f"{name} allreduce")
dup.Free()
half.Free()

# Iallreduce: Wait, then Test until done
v = np.full(n, 2.0, np.float32)
req = world.Iallreduce(MPI.IN_PLACE, v, op=MPI.SUM)
req.Wait()
check(np.all(v == 2.0 * size), "Iallreduce + Wait")
w = np.empty_like(v)
req = world.Iallreduce(v, w, op=MPI.MAX)
while not req.Test():
    pass
check(np.all(w == 2.0 * size), "Iallreduce + Test")
bufs = [np.full(n, float(k), np.float64) for k in range(3)]  # alive until the wait
reqs = [world.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM) for b in bufs]
MPI.Request.Waitall(reqs)
check(all(np.all(b == k * size) for k, b in enumerate(bufs)), "3 Iallreduce + Waitall")

# a derived datatype (pairs of floats) with a user op stays with MPI and is still right (MPI's
# own ops take predefined datatypes only)
def pair_sum(inbuf, inoutbuf, datatype):
    a = np.frombuffer(inbuf, np.float32)
    b = np.frombuffer(inoutbuf, np.float32)
    b += a


pair = MPI.FLOAT.Create_contiguous(2).Commit()
op = MPI.Op.Create(pair_sum, commute=True)
p = np.full(2 * n, float(rank), np.float32)
q = np.empty_like(p)
world.Allreduce([p, n, pair], [q, n, pair], op=op)
check(np.all(q == size * (size - 1) / 2), "derived datatype allreduce")
world.Bcast([p, n, pair], root=0)
check(np.all(p == 0), "derived datatype bcast")
op.Free()
pair.Free()

# bcast and allgather of numpy buffers
b = np.arange(n, dtype=np.int32) if rank == 0 else np.empty(n, np.int32)
world.Bcast(b, root=0)
check(np.array_equal(b, np.arange(n, dtype=np.int32)), "Bcast")
g = np.empty((size, n), np.float32)
world.Allgather(np.full(n, float(rank), np.float32), g)
check(all(np.all(g[r] == r) for r in range(size)), "Allgather")

bad = world.allreduce(len(failures), op=MPI.SUM)
if rank == 0:
    print(f"{'FAIL' if bad else 'PASS'}: {bad} failure(s) over {size} ranks")
sys.exit(1 if bad else 0)
