"""Every figure family, rendered from each committed reference set's
group statistics: no legend, label, title or footer falls outside the
canvas (the review found legends cut off on the left)."""

from __future__ import annotations

import pytest

from conftest import ROOT

from rxbench import plots
from rxbench.present import statsfile
from rxbench.present.figdata import plan

pytestmark = [pytest.mark.unit, pytest.mark.slow]

SETS = sorted(p.parent.name for p in (ROOT / "results" / "reference").glob("*/summary.csv"))


@pytest.fixture(scope="module", params=SETS)
def stats(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "stats.csv"
    statsfile.write(ROOT / "results" / "reference" / request.param / "summary.csv", out)
    return statsfile.read(out)


def test_every_figure_keeps_its_texts_on_the_canvas(stats, tmp_path, monkeypatch):
    drawn = []
    close = plots.plt.close

    def keep(fig=None):
        drawn.append((fig, plots.outside_canvas(fig)))
        close(fig)

    monkeypatch.setattr(plots.plt, "close", keep)
    families = plan(stats)
    assert families, "the set supports no figure"
    for name in families:
        plots.figure(name, stats, tmp_path / f"{name}.pdf", tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    bad = {name: out for name, (_, out) in zip(families, drawn) if out}
    assert len(drawn) == len(families)
    assert not bad, bad


def test_a_text_off_the_canvas_is_found():
    fig, ax = plots.plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], label="a very long legend entry that cannot fit a small figure")
    fig.legend(loc="lower center", bbox_to_anchor=(0.5, 0.0))
    assert any("legend" in o for o in plots.outside_canvas(fig))
    plots.plt.close(fig)
