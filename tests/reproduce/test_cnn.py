"""The CNN stage of `blastscan reproduce`: each CNN it trains gets its CNN-only bundle."""

from pathlib import Path

from blastscan.reproduce import cnn


def test_train_cnn_resumes_and_writes_the_cnn_only_bundle(monkeypatch, tmp_path: Path):
    from blastscan.bundle import build

    trained, bundled = [], []
    monkeypatch.setattr(cnn, "train", lambda data, out, config, **kw: trained.append((out, kw)))
    monkeypatch.setattr(build, "write_cnn_bundle", lambda run_dir: bundled.append(run_dir))
    run = tmp_path / "cnn"
    cnn.train_cnn("data", run, "config", None, False)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.safetensors").write_bytes(b"")
    cnn.train_cnn("data", run, "config", None, False)
    assert [kw["resume"] for _, kw in trained] == [False, True]
    assert bundled == [run, run]
    monkeypatch.setenv("RANK", "1")  # another torchrun rank: rank 0 writes it
    cnn.train_cnn("data", run, "config", None, False)
    assert len(trained) == 3 and bundled == [run, run]
