"""tf.distribute for ``edgeseg train``: the strategy from --strategy and TF_CONFIG, the chief rule, agreement."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.errors import EdgesegError

STRATEGIES = ("default", "mirrored", "multi-worker")
TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster":{"worker":["host0:12345","host1:12345"]},'
                     '"task":{"type":"worker","index":0}}\' (index 1 on the second machine)')
CLUSTER_TIMEOUT_S = 300  # how long a worker waits for the others to start before naming the missing one


@dataclass(frozen=True)
class Cluster:
    """This process's place in a TF_CONFIG cluster.

    Attributes:
        jobs: ``{"chief": [...], "worker": [...]}`` as in TF_CONFIG ("host:port" each).
        task_type: ``chief`` or ``worker``.
        index: This task's index in its job.
    """

    jobs: Mapping[str, tuple[str, ...]]
    task_type: str
    index: int

    @property
    def is_chief(self) -> bool:
        """The task that writes: ``chief``, else worker 0 (TensorFlow's and Keras' rule)."""
        return self.task_type == "chief" or ("chief" not in self.jobs and self.index == 0)

    @property
    def address(self) -> str:
        return self.jobs[self.task_type][self.index]

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.jobs.values())

    def peers(self) -> list[tuple[str, str]]:
        """``(name, "host:port")`` of every other task, e.g. ``("worker 1", "10.0.0.2:2222")``."""
        return [(f"{job} {i}", addr) for job in ("chief", "worker") for i, addr in enumerate(self.jobs.get(job, ()))
                if (job, i) != (self.task_type, self.index)]


def read_tf_config(environ: Mapping[str, str] = os.environ) -> Optional[Cluster]:
    """The cluster TF_CONFIG describes (None when it is unset or empty).

    Raises:
        EdgesegError: TF_CONFIG is not JSON, or lacks ``cluster``/``task``, or its task is not in
            its cluster, or it names ``ps``/``evaluator`` tasks (multi-worker training uses
            ``chief`` and ``worker`` only). One line, with the expected form.
    """
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None

    def bad(why: str) -> EdgesegError:
        return EdgesegError(f"TF_CONFIG {why}; expected e.g. {TF_CONFIG_EXAMPLE}.")

    try:
        conf = json.loads(raw)
    except json.JSONDecodeError as e:
        raise bad(f"is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(conf, dict) or not isinstance(conf.get("cluster"), dict) or not isinstance(
            conf.get("task"), dict):
        raise bad("needs a \"cluster\" object and a \"task\" object")
    cluster, task = conf["cluster"], conf["task"]
    other = sorted(set(cluster) - {"chief", "worker"})
    if other:
        raise bad(f"names {', '.join(other)} tasks, which multi-worker training does not use "
                  "(chief and worker only)")
    jobs: dict[str, tuple[str, ...]] = {}
    for job, addrs in cluster.items():
        if not isinstance(addrs, list) or not addrs or not all(
                isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addrs):
            raise bad(f"cluster.{job} must be a list of \"host:port\" strings, not {json.dumps(addrs)}")
        jobs[job] = tuple(addrs)
    if "worker" not in jobs and "chief" not in jobs:
        raise bad("has no \"worker\" list in \"cluster\"")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise bad(f"task {json.dumps(task)} is not one of its cluster's tasks "
                  f"({', '.join(f'{j} 0..{len(a) - 1}' for j, a in jobs.items())})")
    return Cluster(jobs, task_type, index)


def make_strategy(name: str, log: Callable[[str], None],
                  cluster_timeout: float = CLUSTER_TIMEOUT_S) -> tuple[Any, Optional[Cluster]]:
    """The tf.distribute strategy for ``--strategy name``, and the cluster (None: one machine).

    Must run before anything else touches TensorFlow's context (collective ops are
    configured once, at startup). ``multi-worker`` waits up to ``cluster_timeout``
    seconds for every task of TF_CONFIG to start.

    Raises:
        EdgesegError: An unknown name, a malformed TF_CONFIG, TensorFlow already
            initialized, or a task that did not answer in time (named, with its address).
    """
    if name not in STRATEGIES:
        raise EdgesegError(f"--strategy {name!r} must be one of {', '.join(STRATEGIES)}.")
    if name != "multi-worker" and cluster_timeout != CLUSTER_TIMEOUT_S:
        log(f"--cluster-timeout applies to --strategy multi-worker only; ignored with --strategy {name}.")
    cluster = read_tf_config() if name == "multi-worker" else None
    from edgeseg.deps import tensorflow

    tf = tensorflow()
    if name == "default":
        return tf.distribute.get_strategy(), None
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        log(f"--strategy mirrored: {len(gpus)} GPU(s), one replica each" if gpus else
            "--strategy mirrored: this machine has no GPU; training runs on the CPU as one replica.")
        return tf.distribute.MirroredStrategy(), None
    if cluster is None:
        log("--strategy multi-worker: TF_CONFIG is not set, so this process trains alone as one "
            f"worker; to train on several machines set on each {TF_CONFIG_EXAMPLE}.")
        return tf.distribute.MultiWorkerMirroredStrategy(), None
    from tensorflow.python.eager import context

    if context.context()._context_handle is not None:  # noqa: SLF001 -- no public "initialized?"
        raise EdgesegError("--strategy multi-worker must start before TensorFlow is used in this "
                           "process; run `edgeseg train` in a process of its own.")
    log(f"--strategy multi-worker: {cluster.task_type} {cluster.index} of {cluster.size} at "
        f"{cluster.address}{' (chief: writes the model)' if cluster.is_chief else ''}; "
        f"waiting up to {cluster_timeout:g} s for the others")
    # TensorFlow waits for every task forever (holding the GIL, so no thread can time it
    # out), so the tasks first meet on their TF_CONFIG ports with plain sockets.
    wait_for_peers(cluster, cluster_timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return strategy, cluster


def wait_for_peers(cluster: Cluster, timeout: float) -> None:
    """Return once every other task of ``cluster`` accepts TCP connections on its port.

    This task listens on its own port meanwhile (without accepting: the kernel completes
    the peers' connections, and closing refuses the rest), so two tasks waiting for each
    other both see the other; a peer that got further listens with TensorFlow's server.

    Raises:
        EdgesegError: This task's port is taken, or a task did not answer within
            ``timeout`` seconds (named, with its address).
    """
    host, _, port = cluster.address.rpartition(":")
    listener = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(port)))
        listener.listen(64)
    except OSError as e:
        listener.close()
        raise EdgesegError(f"multi-worker: cannot listen on port {port} of {cluster.address} "
                           f"({e.strerror or e}); free it or give this task another port in TF_CONFIG.") from None
    deadline = time.monotonic() + timeout
    waiting = dict(cluster.peers())
    try:
        while waiting:
            waiting = {n: a for n, a in waiting.items() if not reachable(a, timeout=1.0)}
            if waiting and time.monotonic() > deadline:
                raise EdgesegError(
                    "multi-worker: could not reach " + ", ".join(f"{n} at {a}" for n, a in waiting.items())
                    + f" within {timeout:g} s; start every task of TF_CONFIG and check that its host:port "
                    "is reachable from here (--cluster-timeout to wait longer).")
            if waiting:
                time.sleep(0.5)
    finally:
        listener.close()


def reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def lost_peer_message(e: BaseException, cluster: Cluster, backup: Path) -> Optional[str]:
    """One line for a collective that failed because a task went away (None: not that error)."""
    text = str(e)
    said = (type(e).__name__ + " " + text).lower()
    if not any(w in said for w in ("unavailable", "is down", "unhealthy")):
        return None
    gone = [f"{n} ({a})" for n, a in cluster.peers() if f"task:{n.split()[1]}" in text and n.split()[0] in text]
    who = ", ".join(gone) or "another task"
    return (f"multi-worker: lost {who}; restart every task with the same command: training resumes "
            f"after the last finished epoch (backup {backup}).")


def write_path(out: Path, cluster: Optional[Cluster], scratch: Optional[Path]) -> Path:
    """Where this task writes the model of ``-o out``: ``out`` on the chief, ``scratch`` elsewhere
    (every task saves, as the Keras multi-worker rule says; only the chief's copy is kept)."""
    if cluster is None or cluster.is_chief or scratch is None:
        return out
    return scratch / out.name


def worker_scratch(cluster: Optional[Cluster]) -> Optional[Path]:
    """A temporary folder for a non-chief task's copies (None on the chief or one machine)."""
    if cluster is None or cluster.is_chief:
        return None
    return Path(tempfile.mkdtemp(prefix=f"edgeseg-{cluster.task_type}{cluster.index}-"))


def remove_scratch(scratch: Optional[Path]) -> None:
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def all_sum(strategy: Any, value: np.ndarray) -> np.ndarray:
    """Sum ``value`` (float64) over the workers: each worker's value counted once, whatever
    its number of local replicas. Every worker gets the same result."""
    import tensorflow as tf

    n_local = len(strategy.extended.worker_devices)
    local = np.asarray(value, np.float64) / n_local

    def per_replica(_: Any) -> Any:
        return tf.constant(local)

    values = strategy.experimental_distribute_values_from_function(per_replica)
    return np.asarray(strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None))


def agree(strategy: Any, value: float, what: str) -> None:
    """Raise on every worker unless all workers hold the same ``value``.

    Raises:
        EdgesegError: The workers disagree (``what`` says about what, and the likely cause).
    """
    n = strategy.num_replicas_in_sync / len(strategy.extended.worker_devices)
    got = all_sum(strategy, np.array([value, value * value]))
    if not np.allclose(got, np.array([value, value * value]) * n):
        raise EdgesegError(f"multi-worker: the workers disagree on {what} (this one: {value:g}, "
                           f"mean {got[0] / n:g}).")


def names_checksum(pairs: list[tuple[Path, Path]]) -> float:
    """A CRC-32 of the pairs' file names (exact as a float64), for :func:`agree`."""
    import zlib

    return float(zlib.crc32("\n".join(f"{i.name}\t{m.name}" for i, m in pairs).encode()))


def shard(items: list[Any], context: Any) -> list[Any]:
    """This input pipeline's share of ``items`` (every ``n``-th from its id; all items once in all)."""
    return items[context.input_pipeline_id::context.num_input_pipelines]


def rank(cluster: Optional[Cluster]) -> tuple[int, int]:
    """``(this worker's number, workers)`` in TensorFlow's order: the chief first, then the workers."""
    if cluster is None:
        return 0, 1
    if cluster.task_type == "chief":
        return 0, cluster.size
    return cluster.index + ("chief" in cluster.jobs), cluster.size


def backup_path(out: Path) -> Path:
    """The marker of an unfinished multi-worker run of ``-o out``: the epoch its last checkpoint holds."""
    return out.with_name(out.stem + ".backup.json")


def backup_to_resume(out: Path, last: Path) -> Optional[str]:
    """The checkpoint a restarted multi-worker run continues from (None: start afresh).

    The chief writes ``<model>.backup.json`` after each epoch's checkpoint and removes it
    when the run completes, as ``keras.callbacks.BackupAndRestore`` does with its folder.
    """
    marker = backup_path(out)
    return str(last) if marker.exists() and last.exists() else None


class Combine:
    """What the workers share after each epoch: validation, clocks, the backup marker."""

    def __init__(self, strategy: Any, cluster: Cluster, out: Path) -> None:
        self.strategy, self.cluster, self.out = strategy, cluster, out
        self.n_workers = strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)

    def epoch(self, acc: Any, elapsed: float, epoch_seconds: float) -> tuple[Any, float, float]:
        """Sum the workers' confusion matrices and average their clocks (one all-reduce)."""
        n = acc.cm.size
        got = all_sum(self.strategy, np.concatenate([acc.cm.ravel().astype(np.float64),
                                                     [elapsed, epoch_seconds]]))
        acc.cm = np.rint(got[:n]).astype(np.int64).reshape(acc.cm.shape)
        return acc, float(got[n] / self.n_workers), float(got[n + 1] / self.n_workers)

    def saved(self, epoch: int) -> None:
        """After the chief saved epoch ``epoch``'s checkpoint: mark the run as resumable."""
        if self.cluster.is_chief:
            from edgeseg.atomic import write_text

            write_text(backup_path(self.out), json.dumps({"epoch": epoch}) + "\n")

    def finished(self) -> None:
        """The run completed: nothing to resume (the chief removes the marker)."""
        if self.cluster.is_chief:
            backup_path(self.out).unlink(missing_ok=True)


class lost_peers:  # noqa: N801 -- a context manager, used as ``with lost_peers(...)``
    """Turn the error of a collective whose peer went away into one line naming it."""

    def __init__(self, cluster: Optional[Cluster], out: Path) -> None:
        self.cluster, self.out = cluster, out

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, e: Optional[BaseException], tb: Any) -> bool:
        if e is None or self.cluster is None or isinstance(e, (EdgesegError, KeyboardInterrupt)):
            return False
        line = lost_peer_message(e, self.cluster, backup_path(self.out))
        if line is None:
            return False
        raise EdgesegError(line) from None


def fit_multi_worker(model: Any, strategy: Any) -> None:
    """Let ``model.fit`` run under MultiWorkerMirroredStrategy with several workers.

    Keras 3 (3.15 here; tensorflow/tensorflow#72388) fails there twice: fit builds the
    model from its first batch after ``strategy.reduce("MEAN", (x, y, w))``, which the
    strategy refuses for a tuple ("Attempt to convert a value (PerReplica...) to a
    Tensor"), and it averages each step's logs with ``reduce("MEAN", v, axis=0)``,
    which fails on a scalar loss ("Invalid reduction dimension 0"). The batch is there
    only for its shapes, so this worker's first local batch serves; the logs go out
    as 1-element vectors, whose mean over axis 0 is the mean over all replicas.
    """
    import keras
    import tensorflow as tf

    step = model.train_step

    def train_step(data: Any) -> Any:
        return {k: tf.reshape(v, (1,)) for k, v in step(data).items()}

    def build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)  # noqa: SLF001

    model._maybe_symbolic_build = build  # noqa: SLF001
    model.train_step = train_step


def datasets(strategy: Any, cluster: Optional[Cluster], make_dataset: Callable[..., Any],
             train_pairs: list[Any], val_pairs: list[Any], cfg: Any, batch: int, steps_per_epoch: int,
             **options: Any) -> tuple[Any, Any]:
    """The training input of every replica, and this worker's validation data.

    Sharded by file, by hand (tf.data's AutoShardPolicy.FILE needs a dataset of files
    that a reader opens; ours is a list of names decoded by our readers, where DATA
    would make every worker decode every file): input pipeline ``i`` of ``n`` reads
    every ``n``-th pair from the ``i``-th, so each pair belongs to one worker. Each
    replica gets ``batch / replicas`` pairs a step, and every pipeline yields exactly
    ``steps_per_epoch`` steps a pass, so all workers run the same steps (the
    collectives need it) and no pair is seen twice in an epoch. Validation is split
    the same way; :class:`Combine` sums the workers' confusion matrices.
    """
    def train_fn(ctx: Any) -> Any:
        local_replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        return make_dataset(shard(train_pairs, ctx), cfg, ctx.get_per_replica_batch_size(batch), True,
                            steps=steps_per_epoch * local_replicas, **options)

    train_ds = strategy.distribute_datasets_from_function(train_fn)
    rank_, n_workers = rank(cluster)
    val_options = {k: v for k, v in options.items() if k in ("encoding", "cache")}
    return train_ds, make_dataset(val_pairs[rank_::n_workers], cfg, batch, False, **val_options)
