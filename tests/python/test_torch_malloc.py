"""TERSE_TORCH_MALLOC: terse.torch.init() keeps autograd's freed gradient buffers for reuse, so
backward passes stop page-faulting them in; "system" leaves malloc alone; bad values fail."""
import os
import subprocess
import sys

import pytest

CHILD = r"""
import resource, sys, torch
import terse.torch as hvd
torch.set_num_threads(1)
hvd.init()
m = torch.nn.Sequential(torch.nn.Linear(4096, 4096), torch.nn.Linear(4096, 10))
x = torch.randn(2, 4096)
def step():
    m.zero_grad()
    m(x).sum().backward()
for _ in range(2):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 6)
hvd.shutdown()
"""


def faults_per_step(value):
    env = dict(os.environ, TERSE_TORCH_MALLOC=value)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_keep_stops_refaulting_gradients():
    # The 4096x4096 weight's gradient is 64 MiB = 16384 pages, allocated anew by every
    # backward: with glibc's default each step faults them in again.
    system, keep = faults_per_step("system"), faults_per_step("keep")
    assert system > 16384 // 2, system
    assert keep < system // 4, (keep, system)


def test_bad_value_is_refused():
    env = dict(os.environ, TERSE_TORCH_MALLOC="sometimes")
    out = subprocess.run([sys.executable, "-c", "import terse.torch as h; h.init()"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "TERSE_TORCH_MALLOC" in out.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
