"""``effscale cam RUN``: class activation maps of a run's trained models, on the same images."""

from __future__ import annotations

from typing import Annotated

import typer

from effscale import atomic
from effscale.cli import options as opt
from effscale.cli import render
from effscale.errors import EffscaleError
from effscale.experiment.rundir import SETTINGS_FILE
from effscale.experiment.storage import JOURNAL_NAME
from effscale.report.cam_grid import (
    cam_grid,
    load_models,
    pick_images,
    validation_split,
    weight_files,
)
from effscale.report.html import write_run_report
from effscale.report.load import read_settings_file
from effscale.report.sections import CAM_FILE


def register(app: typer.Typer) -> None:
    app.command(help=cam.__doc__)(cam)


def cam(
    run: opt.RunDirectory,
    rows: Annotated[int, typer.Option(
        min=1, max=64, help="Validation images to show: the grid's rows.")] = 8,
    image_seed: Annotated[int, typer.Option(
        help="Seed that picks the images; the same images for every model.")] = 0,
    models: Annotated[str | None, typer.Option(
        help="Comma list of the models to show, in that order (default: every model whose "
             "weights the run kept: base, depth, width, resolution, then the compound "
             "ones).")] = None,
    data_dir: opt.DataDir = None,
    as_json: opt.AsJson = False,
) -> None:
    """Class activation maps: for the same validation images, what the base, the depth-,
    width- and resolution-only models and the compound model of a compare run look at (the
    EfficientNet paper's Fig. 7, on your data; a search run with --keep-weights works too).

    Each map is the exact CAM of the predicted class: the features after the head conv,
    weighted by that class's row of the linear classifier (for a global-pool + linear head,
    their spatial mean plus the bias is the logit itself). The images are drawn from the run's
    own validation split (checked against its data fingerprint); an Eff-UNet shows its
    predicted mask. Writes RUN/cam.png and refreshes RUN/report.html.
    """
    if run is None or not (run / SETTINGS_FILE).is_file():
        raise EffscaleError(f"{run}: not an effscale run directory (no {SETTINGS_FILE})")
    names = [n.strip() for n in models.split(",") if n.strip()] if models else None
    loaded = load_models(weight_files(run, names))
    val = validation_split(read_settings_file(run), data_dir)
    picked = pick_images(val.labels, rows, image_seed)
    png = cam_grid(val.images[picked], val.labels[picked], val.classes, loaded)
    target = run / CAM_FILE
    atomic.write_bytes(target, png)
    page = write_run_report(run) if (run / JOURNAL_NAME).is_file() else None
    if as_json:
        render.print_json({"cam": str(target), "images": len(picked),
                           "models": [m.name for m in loaded],
                           "written": [str(target), *([str(page)] if page else [])]})
    else:
        render.out.print(f"wrote {target}: {len(picked)} validation images × "
                         f"{', '.join(m.name for m in loaded)}", markup=False, highlight=False)
        if page is not None:
            render.out.print(f"wrote {page}", markup=False, highlight=False)
    if page is None:
        render.err.print("its study is in a shared storage: `effscale report RUN --html "
                         "--storage URL --study NAME` adds the maps to report.html",
                         markup=False, highlight=False)
