"""Training curves (training/curves.py): the stage-progress figure from a table, one-line
errors."""

import json

from PIL import Image

from handlatent.training.curves import TEST_ROWS, main

HEADER = "stage,branch,images," + ",".join(column for column, _, _ in TEST_ROWS)


def test_progress_figure_is_drawn_from_the_table(tmp_path, capsys):
    table = tmp_path / "stages.csv"
    table.write_text(HEADER + "\n8,a,0,20.7,19.4,0.77,24.3,34.1\n10,a,288000,20.9,19.6,0.79,22.7,"
                     "30.9\n8,b,0,20.7,19.4,0.77,24.3,34.1\n13,b,320000,21.0,19.5,0.80,22.0,29.0\n")
    out = tmp_path / "figs" / "progress.png"
    assert main([str(table), str(out)]) == 0
    image = Image.open(out)
    assert image.size[0] > 3 * image.size[1]  # one panel per row, side by side
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 20  # lines, markers and labels, not blank
    assert capsys.readouterr().out.strip() == str(out)


def test_progress_refuses_a_missing_table_or_column_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "none.csv"), str(tmp_path / "o.png")]) == 2
    assert "none.csv: cannot read" in capsys.readouterr().err
    table = tmp_path / "short.csv"
    table.write_text("stage,branch,images,hand_psnr_db\n8,a,0,20.7\n")
    assert main([str(table), str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing columns" in err and "viewpoint_deg" in err
    assert not (tmp_path / "o.png").exists()
    assert main([]) == 2


def test_decoder_stage_runs_get_their_own_panels(tmp_path):
    from handlatent.training.curves import DECODER_PANELS, PANELS, panels_of, plot_curves

    run = tmp_path / "stage"
    run.mkdir()
    lines = [{"split": "train", "step": s, "image": 2000.0 - s, "l1": 0.2, "ssim": 0.5,
              "uv": 0.06, "side_error": 0.15, "lr": 1e-4} for s in (20, 40)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    assert panels_of(lines) is DECODER_PANELS
    assert panels_of([{"split": "train", "step": 1, "emb/image": 1.0}]) is PANELS
    assert plot_curves(run, tmp_path / "c.png").stat().st_size > 10_000
