"""handlatent-bench: each section measures something real and the CLI writes its JSON."""

from __future__ import annotations

import json

import pytest
import torch

from handlatent.bench.cli import main
from handlatent.bench.model import bench_model
from handlatent.bench.synth import bench_synth
from handlatent.bench.timing import summarize_ms, time_interleaved
from handlatent.bench.train import bench_train


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_summarize_ms_orders_statistics() -> None:
    stats = summarize_ms([0.003, 0.001, 0.002, 0.010])
    assert stats["min_ms"] == pytest.approx(1.0)
    assert stats["median_ms"] == pytest.approx(2.5)
    assert stats["p95_ms"] == pytest.approx(10.0)


def test_interleaved_timing_calls_each_function_once_per_round() -> None:
    """A drifting machine slows every compared function alike: they run in turn, round by
    round, and each gets its own samples."""
    calls = []
    samples = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               repeats=4, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 4  # warm-up, then rounds of a, b
    assert {name: len(s) for name, s in samples.items()} == {"a": 4, "b": 4}
    assert all(t >= 0 for s in samples.values() for t in s)


def test_model_and_synth_sections_report_positive_rates() -> None:
    rows = bench_model(sizes=(64,), repeats=3)
    assert [r["decoder"] for r in rows] == ["tconv5+batch", "nearest+group",
                                            "tconv5+batch+bones"]
    for row in rows:
        assert row["size"] == 64 and 0 < row["decode"]["median_ms"] < 5_000
        assert 0 < row["encode"]["min_ms"] <= row["encode"]["median_ms"]
    (synth,) = bench_synth(sizes=(64,), count=64, repeats=1)
    assert synth["images_per_s"] > 0


def test_train_section_reads_the_runs_metrics() -> None:
    rows = bench_train(sizes=(64,), steps=16, batch_size=8)
    assert [r["precision"] for r in rows] == ["fp32", "bf16+channels_last"]
    for row in rows:
        assert row["images_per_s"] > 0 and 0 <= row["data_wait"] < 1


def test_cli_writes_json_and_rejects_unknown_sections(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["model", "--repeats", "3", "--threads", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {r["size"] for r in result["model"]} == {64, 128, 256}
    assert result["machine"]["cores"] >= 1
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2
    assert "unknown section 'nonsense'" in capsys.readouterr().err


def test_stand_in_decoder_keeps_the_output_and_refuses_a_faster_one() -> None:
    from handlatent.bench.standin import slow_decoder
    from handlatent.model import ModelConfig, build_model
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64)).eval()
    z = torch.randn(3, model.layout.total)
    with torch.inference_mode():
        before = model.decode(z)["image"]
    with pytest.raises(ValueError, match="must be slower than the model's own decode"):
        slow_decoder(model, 1e-6)
    calibrated = slow_decoder(model, 1000.0)
    assert calibrated["factor"] > 1 and calibrated["own_decode_ms"] > 0
    with torch.inference_mode():
        torch.testing.assert_close(model.decode(z)["image"], before)


def test_gui_section_uses_the_guis_thread_default() -> None:
    from handlatent.bench.cli import _threads_for
    from handlatent.threads import GUI_THREADS
    assert _threads_for("gui", None) == GUI_THREADS == 1
    assert _threads_for("model", None) >= 1 and _threads_for("gui", 2) == 2
