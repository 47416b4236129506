"""Launches of the "terse" process group without mpirun: torchrun (python3 -m
torch.distributed.run), and plain env:// processes one of which dies (the others raise within
the timeout, nothing hangs)."""
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "pg_worker.py")


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**kw):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("OMPI_") or k.startswith("PMIX_") or k in ("RANK", "WORLD_SIZE"):
            del env[k]
    env.update({k: str(v) for k, v in kw.items()})
    return env


@pytest.mark.parametrize("nproc", [2, 3])
def test_torchrun(nproc, tmp_path):
    # --redirects/--tee 1: torch 1.13's torchrun cannot parse its own default "0" under
    # Python 3.11 (Std.from_str iterates an IntFlag, which yields only the one-bit members,
    # and returns None for 0 and 3); 1 (stdout) parses, and tee keeps it on our pipe
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_port()),
           "--redirects", "1", "--tee", "1", "--log_dir", str(tmp_path), WORKER, "ok"]
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("worker ok") == nproc, p.stdout + p.stderr


def test_dead_rank_raises_within_timeout():
    size, port, timeout = 3, _port(), 15
    procs = [subprocess.Popen([sys.executable, WORKER, "die", str(timeout)],
                              env=_env(RANK=r, WORLD_SIZE=size, MASTER_ADDR="127.0.0.1",
                                       MASTER_PORT=port, TERSE_TIMEOUT=timeout),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(size)]
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout + 90)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a rank hung")
        outs.append((p.returncode, out))
    assert outs[-1][0] == 3, outs
    for rc, out in outs[:-1]:
        assert rc == 0 and "worker raised" in out and "terse" in out, out
