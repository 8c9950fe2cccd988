"""Run the stages in order: skip the up-to-date ones, pause for the annotation vendor, summarise."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table

from ..errors import MarauderError
from ..log import console
from .fingerprint import fingerprint
from .stages import STAGE_NAMES, STAGES, VENDOR_AFTER, Stage
from .state import PipelineState

WAITING = "waiting for vendor labels"


@dataclass
class PipelineOptions:
    start: str | None = None
    stop: str | None = None
    skip: tuple[str, ...] = ()
    force: bool = False
    vendor_pause: bool = True


def select_stages(start: str | None, stop: str | None, skip: tuple[str, ...]) -> list[Stage]:
    for name in [start, stop, *skip]:
        if name is not None and name not in STAGE_NAMES:
            raise MarauderError(f"unknown stage '{name}'; stages are: {', '.join(STAGE_NAMES)}")
    lo = STAGE_NAMES.index(start) if start else 0
    hi = STAGE_NAMES.index(stop) if stop else len(STAGES) - 1
    if lo > hi:
        raise MarauderError(f"--from {start} comes after --to {stop}")
    return [s for s in STAGES[lo:hi + 1] if s.name not in skip]


def vendor_round_done(ws) -> bool:
    """Labels came back from the vendor after the current annotation package was made."""
    package = ws.annotation_package
    labels = list(ws.annotated_labels.glob("*.txt")) if ws.annotated_labels.is_dir() else []
    if not package.exists():
        return True  # nothing was sent
    return bool(labels) and max(p.stat().st_mtime for p in labels) >= package.stat().st_mtime


def run_stage(stage: Stage, ctx) -> int:
    """The stage's command, called as `marauder <stage>` would call it: its `run` with the arguments its
    declaration adds (parsed by the command's own parser, so every other argument has its CLI default)
    and a context of its own on the same workspace, config file and overrides."""
    from ..cli import command_arguments, run_command
    from ..context import Context

    args = command_arguments(stage.name, list(stage.args(ctx.workspace, ctx.config)))
    args.config, args.workspace = ctx.config_path, ctx.workspace.root
    return run_command(args, Context(ctx.workspace, ctx.config_path, list(ctx.overrides)))


def run_pipeline(ctx, opts: PipelineOptions) -> int:
    ws, cfg = ctx.workspace, ctx.config
    state = PipelineState.load(ws.pipeline_state)
    stages = select_stages(opts.start, opts.stop, opts.skip)
    rc = 0
    vendor_back = ws.annotation_package.exists() and vendor_round_done(ws)
    for stage in stages:
        rec = state.record(stage.name)
        if (vendor_back and rec.status == "done" and not opts.force
                and STAGE_NAMES.index(stage.name) <= STAGE_NAMES.index(VENDOR_AFTER)):
            # Importing the vendor's labels changes data/organized; that must feed the stages after
            # the vendor round, not retrain the baseline and send a new package out.
            if rec.metric == WAITING:
                state.mark(stage.name, metric="vendor labels imported")
            console.print(f"[green]✓[/] {stage.name}: done before the vendor round, kept")
            continue
        if not stage.enabled(cfg):
            state.mark(stage.name, status="skipped", metric="disabled in config")
            continue
        sections = {name: getattr(cfg, name).model_dump(mode="json") for name in stage.sections}
        fp = fingerprint(sections, stage.inputs(ws, cfg))
        outputs = stage.outputs(ws, cfg)
        up_to_date = rec.status == "done" and rec.fingerprint == fp and all(p.exists() for p in outputs)
        if up_to_date and not opts.force:
            console.print(f"[green]✓[/] {stage.name}: up to date, skipped")
            continue
        console.rule(f"[bold]{stage.name}")
        state.mark(stage.name, status="running", started=time.time(), seconds=None)
        start = time.perf_counter()
        rc = run_stage(stage, ctx)
        seconds = round(time.perf_counter() - start, 1)
        if rc != 0:
            state.mark(stage.name, status="failed", seconds=seconds)
            console.print(f"[red]✗ {stage.name} failed (exit {rc}); fix it and rerun `marauder pipeline`[/]")
            break
        state.mark(stage.name, status="done", fingerprint=fp, seconds=seconds, metric=stage.metric(ws))
        if stage.name == VENDOR_AFTER and opts.vendor_pause and not vendor_round_done(ws):
            state.mark(stage.name, metric=WAITING)
            console.print(
                f"\n[bold yellow]Paused for annotation.[/] Send {ws.annotation_package} to the vendor. "
                "When the labels come back, run\n"
                "  marauder import-annotations path/to/annotations.json --merge\n"
                "then `marauder pipeline` again: it goes on from here."
            )
            break
    print_summary(state, stages)
    if rc == 0 and state.record(STAGES[-1].name).status == "done":
        console.print(f"Evaluation report: {ws.evaluation_report().with_name('report.html')}")
        console.print(f"Deployment package: {ws.deployment_dir}")
    return rc


def print_summary(state: PipelineState, stages: list[Stage]) -> None:
    table = Table(title="pipeline")
    for col in ("stage", "status", "time (s)", "key metric"):
        table.add_column(col)
    for stage in stages:
        rec = state.record(stage.name)
        table.add_row(stage.name, rec.status, "" if rec.seconds is None else f"{rec.seconds:.1f}", rec.metric or "")
    console.print(table)
