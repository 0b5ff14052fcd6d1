"""train --strategy multi-worker / mirrored: TF_CONFIG, sharding by file, two workers on loopback, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError
from edgeseg.train.distribute import Cluster, read_tf_config

EDGESEG = [sys.executable, "-c", "from edgeseg.cli import main; main()"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


@pytest.mark.parametrize("raw, says", [
    ("{not json", "is not valid JSON"),
    ('{"cluster": {"worker": ["localhost:1"]}}', 'needs a "cluster" object and a "task" object'),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "worker 0..1"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "names ps"),
])
def test_a_malformed_tf_config_is_one_line(raw, says):
    with pytest.raises(EdgesegError) as e:
        read_tf_config({"TF_CONFIG": raw})
    assert says in str(e.value) and "\n" not in str(e.value) and "expected e.g. TF_CONFIG=" in str(e.value)


def test_tf_config_chief_and_ranks():
    from edgeseg.train.distribute import rank

    assert read_tf_config({}) is None
    two = read_tf_config({"TF_CONFIG": tf_config([1, 2], 1)})
    assert two == Cluster({"worker": ("localhost:1", "localhost:2")}, "worker", 1)
    assert not two.is_chief and two.address == "localhost:2" and rank(two) == (1, 2)
    assert two.peers() == [("worker 0", "localhost:1")]
    assert read_tf_config({"TF_CONFIG": tf_config([1, 2], 0)}).is_chief
    # A chief task (Kubeflow's Chief replica) writes; the workers come after it.
    chief = {"cluster": {"chief": ["c:1"], "worker": ["w:2", "w:3"]}}
    w0 = read_tf_config({"TF_CONFIG": json.dumps({**chief, "task": {"type": "worker", "index": 0}})})
    c = read_tf_config({"TF_CONFIG": json.dumps({**chief, "task": {"type": "chief", "index": 0}})})
    assert c.is_chief and not w0.is_chief and rank(c) == (0, 3) and rank(w0) == (1, 3)


def test_train_cli_says_a_bad_tf_config_in_one_line(synth_data, tmp_path):
    r = CliRunner().invoke(app, ["train", "--data", str(synth_data), "-o", str(tmp_path / "m.keras"),
                                 "--strategy", "multi-worker", "--epochs", "1"], env={"TF_CONFIG": "{oops"})
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("error: TF_CONFIG is not valid JSON")
    assert not (tmp_path / "m.keras").exists()


def test_no_tf_config_and_no_gpu_are_said(monkeypatch):
    from edgeseg.deps import tensorflow
    from edgeseg.train.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    logs: list[str] = []
    strategy, cluster = make_strategy("multi-worker", logs.append)
    assert cluster is None and strategy.num_replicas_in_sync == 1
    assert len(logs) == 1 and "TF_CONFIG is not set" in logs[0] and "trains alone" in logs[0]
    logs.clear()
    make_strategy("mirrored", logs.append)
    gpus = tensorflow().config.list_physical_devices("GPU")
    assert len(logs) == 1 and (("GPU(s)" in logs[0]) if gpus else "no GPU; training runs on the CPU" in logs[0])
    with pytest.raises(EdgesegError, match="must be one of default, mirrored, multi-worker"):
        make_strategy("horovod", logs.append)


def test_cluster_timeout_without_multi_worker_is_said(monkeypatch):
    from edgeseg.train.distribute import make_strategy

    logs: list[str] = []
    make_strategy("default", logs.append, cluster_timeout=5)
    assert logs == ["--cluster-timeout applies to --strategy multi-worker only; ignored with --strategy default."]
    logs.clear()
    make_strategy("default", logs.append)  # the default value: nothing to say
    assert logs == []


class _TwoPipelines:
    """A stand-in for a strategy of 2 workers x 1 replica: builds each worker's input."""

    num_replicas_in_sync = 2

    def distribute_datasets_from_function(self, fn):  # noqa: ANN001, ANN201
        import tensorflow as tf

        return [fn(tf.distribute.InputContext(2, i, 2)) for i in range(2)]


def test_each_worker_reads_its_own_files_and_no_pair_twice_an_epoch(tmp_path):
    import cv2

    from edgeseg.config import ModelConfig
    from edgeseg.data.pipeline import Augment, make_dataset
    from edgeseg.train.distribute import datasets

    # Image i is flat grey 8*i: its mean tells which file a sample came from.
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    pairs = []
    for i in range(23):
        img, mask = tmp_path / "images" / f"{i:02d}.png", tmp_path / "annotations" / f"{i:02d}.png"
        cv2.imwrite(str(img), np.full((64, 64, 3), 8 * i, np.uint8))
        cv2.imwrite(str(mask), np.zeros((64, 64), np.uint8))
        pairs.append((img, mask))
    cfg = ModelConfig(n_classes=2, height=64, width=64)
    batch, steps = 4, 23 // 4  # global batch 4: 2 per worker, 5 steps (3 pairs left out each epoch)
    no_aug = Augment(flip=False, min_crop=1.0, brightness=0, contrast=0)
    for cache in (True, False):
        train, val = datasets(_TwoPipelines(), None, make_dataset, pairs, pairs[:3], cfg, batch, steps,
                              augment=no_aug, seed=1, cache=cache)
        its = [iter(ds) for ds in train]
        orders = []
        for _epoch in range(3):
            seen: list[list[int]] = [[], []]
            for _ in range(steps):
                for w, it in enumerate(its):
                    x, _, _ = next(it)
                    assert x.shape[0] == batch // 2
                    grey = x.numpy()[..., 0].mean(axis=(1, 2)) * cfg.std[0] + cfg.mean[0]
                    seen[w] += [int(round(v / 8)) for v in grey]
            assert all(i % 2 == w for w in (0, 1) for i in seen[w])  # worker w reads files w, w+2, ...
            both = seen[0] + seen[1]
            assert len(both) == len(set(both)) == steps * batch  # no pair twice in an epoch
            orders.append(seen[0])
        assert orders[0] != orders[1]  # reshuffled every epoch


def _start(data: Path, outs: list[Path], ports: list[int], tmp: Path, tag: str, *more: str):
    procs = []
    for i, out in enumerate(outs):
        env = {**os.environ, "TF_CONFIG": tf_config(ports, i), "TF_CPP_MIN_LOG_LEVEL": "3"}
        log = open(tmp / f"{tag}{i}.log", "w")  # noqa: SIM115 -- closed with the process
        procs.append(subprocess.Popen(
            [*EDGESEG, "train", "--data", str(data), "-o", str(out), "--strategy", "multi-worker",
             "--backbone-weights", "none", "--preset", "realtime", "--batch-size", "8", *more],
            env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _log(tmp: Path, name: str) -> str:
    return (tmp / name).read_text()


def _epoch_lines(text: str) -> list[str]:
    return [ln.split("[")[0] for ln in text.splitlines() if ln.startswith("epoch ")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeseg.data.synth import synthesize

    root = tmp_path_factory.mktemp("mw") / "d"
    synthesize(root, n_classes=3, count=32, height=64, width=64, seed=3)
    return root


@pytest.mark.slow
def test_two_workers_train_and_the_chiefs_model_evaluates(tiny, tmp_path):
    outs = [tmp_path / "chief" / "m.keras", tmp_path / "other" / "m.keras"]
    procs = _start(tiny, outs, free_ports(2), tmp_path, "w", "--epochs", "2")
    rcs = [p.wait(timeout=600) for p in procs]
    logs = [_log(tmp_path, f"w{i}.log") for i in range(2)]
    assert rcs == [0, 0], logs
    # 29 training pairs, global batch 8: 3 steps of 4 pairs on each worker.
    assert "3 steps/epoch of 8 (4 per replica, 2 replicas; 5 pairs left out an epoch, drawn anew)" in logs[0]
    # Both workers validated the same (summed) way and agree on every epoch and the best.
    assert _epoch_lines(logs[0]) == _epoch_lines(logs[1]) and len(_epoch_lines(logs[0])) == 2
    assert "Traceback" not in logs[0] + logs[1]
    # Only the chief wrote; the other worker's -o stays empty (its copies went to a temporary folder).
    assert not outs[1].parent.exists() or not any(outs[1].parent.iterdir())
    for suffix in (".keras", ".keras.json", ".history.csv", ".last.keras"):
        assert outs[0].with_name("m" + suffix).exists(), suffix
    assert not outs[0].with_name("m.backup.json").exists()  # the run completed: nothing to resume
    # The chief's model is the single-machine kind: float32, plain BatchNormalization, its config.
    from edgeseg.model.build import build_model
    from edgeseg.model.io import load_model

    model, cfg = load_model(outs[0])
    fresh = build_model(cfg)
    assert [(w.path, w.shape, w.dtype) for w in model.weights] == [(w.path, w.shape, w.dtype)
                                                                    for w in fresh.weights]
    r = CliRunner().invoke(app, ["evaluate", str(outs[0]), "--data", str(tiny)])
    assert r.exit_code == 0 and "mean IoU" in r.output, r.output


@pytest.mark.slow
def test_a_killed_worker_restarts_and_the_run_completes(tiny, tmp_path):
    out = tmp_path / "shared" / "m.keras"  # -o on storage both workers share (loopback: one disk)
    marker = out.with_name("m.backup.json")
    procs = _start(tiny, [out, out], free_ports(2), tmp_path, "a", "--epochs", "3")
    deadline = time.monotonic() + 500
    while not marker.exists():
        assert procs[0].poll() is None and time.monotonic() < deadline, _log(tmp_path, "a0.log")
        time.sleep(0.1)
    done_before = json.loads(marker.read_text())["epoch"]
    procs[1].send_signal(signal.SIGKILL)
    t = time.monotonic()
    rc = procs[0].wait(timeout=180)  # the survivor notices (health checks every 10 s) and stops
    lost_after = time.monotonic() - t
    chief_log = _log(tmp_path, "a0.log")
    assert rc == 2 and "error: multi-worker: lost worker 1 (localhost:" in chief_log, chief_log
    assert "Traceback" not in chief_log
    # Every task restarted (new ports, as a scheduler would): it resumes after the last saved epoch.
    procs = _start(tiny, [out, out], free_ports(2), tmp_path, "b", "--epochs", "3")
    rcs = [p.wait(timeout=600) for p in procs]
    logs = [_log(tmp_path, f"b{i}.log") for i in range(2)]
    assert rcs == [0, 0], logs
    resumed = int(logs[0].split("after epoch ")[1].split()[0])
    assert resumed >= done_before and f"resuming from {out.with_name('m.last.keras')}" in logs[1]
    rows = (out.with_name("m.history.csv")).read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3]
    assert not marker.exists()
    print(f"\nkilled after epoch {done_before}; survivor stopped after {lost_after:.0f} s; "
          f"resumed after epoch {resumed}; {3 - resumed} epoch(s) after the restart")


@pytest.mark.slow
def test_a_missing_worker_is_named_within_the_timeout(tiny, tmp_path):
    ports = free_ports(2)
    t = time.monotonic()
    p = _start(tiny, [tmp_path / "m.keras"], ports, tmp_path, "alone", "--epochs", "1",
               "--cluster-timeout", "3")[0]
    rc = p.wait(timeout=180)
    text = _log(tmp_path, "alone0.log")
    assert rc == 2 and f"could not reach worker 1 at localhost:{ports[1]} within 3 s" in text, text
    assert "Traceback" not in text and time.monotonic() - t < 170


def test_tasks_meet_before_tensorflow_and_a_missing_one_is_named():
    from edgeseg.train.distribute import wait_for_peers

    mine, peer = free_ports(2)
    cluster = read_tf_config({"TF_CONFIG": tf_config([mine, peer], 0)})
    with socket.socket() as other:  # the peer is up (listening): the wait ends at once
        other.bind(("localhost", peer))
        other.listen(4)
        t = time.monotonic()
        wait_for_peers(cluster, timeout=5)
        assert time.monotonic() - t < 5
    t = time.monotonic()  # the peer is gone: one line naming it, after the timeout
    with pytest.raises(EdgesegError, match=f"could not reach worker 1 at localhost:{peer} within 1 s"):
        wait_for_peers(cluster, timeout=1)
    assert 1 <= time.monotonic() - t < 10
    with socket.socket() as taken:  # this task's own port is taken: said, with the fix
        taken.bind(("", mine))
        taken.listen(1)
        with pytest.raises(EdgesegError, match=f"cannot listen on port {mine}"):
            wait_for_peers(cluster, timeout=1)


def test_a_lost_peer_is_one_line_naming_it():
    from edgeseg.train.distribute import lost_peer_message

    cluster = read_tf_config({"TF_CONFIG": tf_config([1111, 2222], 0)})
    err = RuntimeError("UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n"
                       "/job:worker/replica:0/task:1\nThe tasks have crashed.")
    line = lost_peer_message(err, cluster, Path("m.backup.json"))
    assert line.startswith("multi-worker: lost worker 1 (localhost:2222); restart every task") and "\n" not in line
    assert lost_peer_message(ValueError("shapes differ"), cluster, Path("m.backup.json")) is None
