"""Two CPU processes (Gloo): averaged gradients, by DDP or by hand, equal one process on the whole batch.

We start two plain Python processes with the environment `torchrun` would give them (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); that is cheaper than torchrun's agent and
exercises the same `init_distributed` path. Each process backpropagates its half of the batch
(through DDP, in two accumulated micro-batches, and through the plain model followed by
`average_gradients`) and saves its gradients, then runs two steps of `train_loop` to check that only
rank 0 writes files. The same two processes check the collectives the training loop and the
checkpoints use (`any_process`, `gather_objects`) and the sampler that splits a dataset between them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json
    import os
    import sys
    from pathlib import Path

    import torch

    from common.training import (
        Checkpointer, TrainConfig, accumulate_gradients, average_gradients, init_distributed, train_loop,
        wrap_ddp,
    )
    from common.training.distributed import (
        any_process, cleanup, distributed_sampler, gather_objects, get_world_size, is_main_process,
    )

    out = Path(sys.argv[1])
    info = init_distributed("cpu")
    assert get_world_size() == 2 and is_main_process() == (info.rank == 0)
    torch.manual_seed(0)  # same initial weights on both processes
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    data = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 5, generator=data), torch.randn(8, 1, generator=data)
    ddp = wrap_ddp(model, info.device)
    half = slice(4 * info.rank, 4 * info.rank + 4)  # this process's half of the batch
    torch.nn.functional.mse_loss(ddp(x[half]), y[half]).backward()  # DDP averages the gradients
    torch.save([p.grad.clone() for p in model.parameters()], out / f"grads_rank{info.rank}.pt")

    model.zero_grad()  # the same again in two micro-batches: only the last one all-reduces
    accumulate_gradients(lambda c: torch.nn.functional.mse_loss(ddp(c[0]), c[1]), (x[half], y[half]),
                         micro_batches=2, model=ddp)
    torch.save([p.grad.clone() for p in model.parameters()], out / f"accumulated_rank{info.rank}.pt")

    model.zero_grad()  # the same again by hand: the plain model, then an explicit all-reduce
    torch.nn.functional.mse_loss(model(x[half]), y[half]).backward()
    average_gradients(model)
    torch.save([p.grad for p in model.parameters()], out / f"averaged_rank{info.rank}.pt")

    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)

    def step(batch, step):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(batch[0]), batch[1])
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    collective = {
        "any_of_one": any_process(info.rank == 1),  # true on one process: true on both
        "any_of_none": any_process(False),
        "gathered": gather_objects(f"rank {info.rank}"),
        "sampled": list(distributed_sampler(list(range(10)), shuffle=False)),
    }
    (out / f"collective_rank{info.rank}.json").write_text(json.dumps(collective))

    cfg = TrainConfig(run_dir=out / "run", max_steps=2, checkpoint_every=1, progress=False)
    ckpt = Checkpointer(out / "run" / "checkpoints", {"model": ddp, "optimizer": optimizer})
    result = train_loop(step, lambda epoch: [(x[half], y[half])] * 3, cfg, ckpt)
    assert result.step == 2 and (result.checkpoint is not None) == (info.rank == 0)
    cleanup()
    os._exit(0)  # skip the interpreter's teardown of torch (seconds on a busy machine)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_two_ranks(script: Path, tmp_path: Path, port: str) -> list[tuple[int, str]]:
    """Run `script` as ranks 0 and 1 of a gloo process group; (exit status, output) of each."""
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
        return [(proc.returncode, output) for proc, output in zip(procs, outputs, strict=True)]
    finally:
        for proc in procs:  # a rank left waiting for the other after a failure or a timeout
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where ranks 0 and 1 of one run of WORKER left their files."""
    tmp_path = tmp_path_factory.mktemp("ranks")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # The free port is only claimed once rank 0 has started (seconds on a loaded machine), so something
    # else can take it first: then the pair is started again on another port
    for _ in range(3):
        finished = _run_two_ranks(script, tmp_path, str(_free_port()))
        if not any(code and "address already in use" in output.lower() for code, output in finished):
            break
    for code, output in finished:
        assert code == 0, output
    return tmp_path


def test_ddp_and_averaged_gradients_equal_whole_batch(two_ranks: Path):
    tmp_path = two_ranks
    # Reference: one process, the whole batch of 8.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    data = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 5, generator=data), torch.randn(8, 1, generator=data)
    torch.nn.functional.mse_loss(model(x), y).backward()
    for name in ("grads_rank0", "grads_rank1", "accumulated_rank0", "accumulated_rank1", "averaged_rank0",
                 "averaged_rank1"):
        grads = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        for got, param in zip(grads, model.parameters(), strict=True):
            torch.testing.assert_close(got, param.grad, atol=1e-6, rtol=0)

    # Only rank 0 wrote the run's files; the checkpoint holds both processes' generator states.
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step_00000001.pt", "step_00000002.pt"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert len(state["rng"]) == 2 and "module.0.weight" not in state["model"]
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 3  # header + 2 steps


def test_any_process_gather_objects_and_the_sampler_see_both_processes(two_ranks: Path):
    for rank in (0, 1):
        got = json.loads((two_ranks / f"collective_rank{rank}.json").read_text())
        assert got["any_of_one"] is True and got["any_of_none"] is False
        assert got["gathered"] == ["rank 0", "rank 1"]  # indexed by rank, the same on every process
        assert got["sampled"] == list(range(rank, 10, 2))  # each process its own half of the dataset
