"""The CNN stage of `blastscan reproduce`: it trains or resumes; the one bundle of a reproduce
run is the complete OUT/bundle, so no CNN-only bundle is written beside its CNNs."""

from pathlib import Path

from blastscan.reproduce import cnn


def test_train_cnn_resumes_and_writes_no_cnn_only_bundle(monkeypatch, tmp_path: Path):
    trained = []
    monkeypatch.setattr(cnn, "train", lambda data, out, config, **kw: trained.append((out, kw)))
    run = tmp_path / "cnn"
    cnn.train_cnn("data", run, "config", None, False)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.safetensors").write_bytes(b"")
    cnn.train_cnn("data", run, "config", None, False)
    assert [kw["resume"] for _, kw in trained] == [False, True]
    assert not (run / "bundle").exists()
