"""seqjax.app.commands: the inference commands' own behaviour (the end-to-end runs are in
tests/test_task_*.py and tests/test_lm.py): wrong kind of run, stdin, the heatmap."""

import io

import numpy as np

from seqjax import config as config_lib
from seqjax.app import commands
from seqjax.app.cli import main


def _run_dir(tmp_path, spec):
    """A directory that holds only the config.json of a ``spec`` run."""
    (tmp_path / "config.json").write_text(config_lib.to_json(config_lib.resolve(spec)))
    return str(tmp_path)


def test_wrong_kind_of_run_is_one_line(tmp_path, capsys):
    work = _run_dir(tmp_path, "sequences:tiny")
    for argv in (["sample", work, "--prompt", "a"], ["classify", work, "x"], ["translate", work, "x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is a 'sequences' run; this command needs a" in err[0], err


def test_texts_from_arguments_else_stdin(monkeypatch):
    class Args:
        text = ["a b", "c"]

    assert commands._texts(Args) == ["a b", "c"]
    Args.text = []
    monkeypatch.setattr("sys.stdin", io.StringIO("first line\r\nsecond\n"))
    assert commands._texts(Args) == ["first line", "second"]


def test_plot_attention_writes_a_png(tmp_path, monkeypatch):
    from matplotlib import pyplot as plt

    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), real_close(fig)))
    path = tmp_path / "att.png"
    weights = np.eye(3, 4, dtype=np.float32)
    title = "a long input sentence to translate -> " + "x" * 60  # wider than the figure: wrapped, not cut
    commands.plot_attention(str(path), ["a", " ", "b", "c"], ["x", "y", "z"], weights, title=title)
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (800, 628)  # (4, 0.4 * 3 + 1.4 + 0.18 * 3 title lines) inches, 200 dpi
    (fig,) = figures
    heatmap, colorbar = fig.axes
    assert colorbar.get_ylabel() == "attention weight"
    squeeze = lambda text: "".join(text.split())  # noqa: E731 — the title's characters, all of them
    assert squeeze(heatmap.get_title()) == squeeze(title) and heatmap.get_title().count("\n") == 2
    assert [t.get_text() for t in heatmap.get_xticklabels()] == ["a", "␣", "b", "c"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    assert fig.bbox.contains(*heatmap.title.get_window_extent(renderer).p0)
    assert fig.bbox.contains(*heatmap.title.get_window_extent(renderer).p1)
