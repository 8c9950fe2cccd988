"""`marauder ssl-pretrain`: MoCo v3 self-supervised pretraining of the detector backbone."""

from __future__ import annotations

from ..pipeline.declare import Stage, last_epoch_metric

HELP = "self-supervised MoCo v3 pretraining on unlabelled images -> checkpoints/ssl/best_moco.pth"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "ssl-pretrain", ("ssl_pretraining", "data", "general"),
    # organized/: its train/val crops are the probe, its test images are kept out of the pool
    inputs=lambda ws, cfg: [*ws.unlabelled_dirs, ws.fathomnet_images, ws.organized_dir],
    outputs=lambda ws, cfg: [ws.ssl_best],
    enabled=lambda cfg: cfg.ssl_pretraining.enabled,
    metric=lambda ws: last_epoch_metric(ws, "ssl"),
)


def add_arguments(parser) -> None:
    parser.add_argument("--unlabelled", type=str, nargs="*", default=None, metavar="DIR",
                        help="image folders to pretrain on (default: data/deepfish/images, data/marauder/images, "
                             "data/fathomnet/images and data.extra_unlabelled_dirs)")


def run(args, ctx) -> int:
    from ..active.pool import hashes_of
    from ..ssl.data import collect_images
    from ..ssl.pretrain import run_ssl_pretrain

    cfg = ctx.config
    ws = ctx.workspace
    if not cfg.ssl_pretraining.enabled:
        print("ssl_pretraining.enabled is false: nothing to do")
        return 0
    out_dir = ws.stage_checkpoints("ssl-pretrain")
    if args.unlabelled:
        dirs = [ws.path(d) for d in args.unlabelled]
    else:
        dirs = [*ws.unlabelled_dirs, ws.fathomnet_images, *(ws.path(d) for d in cfg.data.extra_unlabelled_dirs)]
    collect_images(dirs)  # an empty pool fails here, before the log and resolved config are written
    log = ctx.start_stage("ssl-pretrain", out_dir)
    ssl_cfg = cfg.ssl_pretraining
    if ssl_cfg.backbone == "auto":
        from ..train.chain import planned_ssl_backbone

        nc = len(cfg.general.classes) or 80
        if ws.dataset_yaml.is_file():
            from ..data.dataset import load_dataset_yaml

            nc = load_dataset_yaml(ws.dataset_yaml).nc
        ssl_cfg = ssl_cfg.model_copy(update={"backbone": planned_ssl_backbone(cfg, ws, nc)})
    labelled = [(ws.organized_images("train"), ws.organized_labels("train"))] \
        if ws.organized_images("train").is_dir() else []
    labelled_val = [(ws.organized_images("val"), ws.organized_labels("val"))] if labelled and \
        ws.organized_images("val").is_dir() else []
    if not labelled and ws.fathomnet_labels.is_dir():
        labelled = [(ws.fathomnet_images, ws.fathomnet_labels)]
    # test images stay out of pretraining: unlabelled, but still seen before the final evaluation
    test_images = hashes_of([ws.organized_images("test")]) if ws.organized_images("test").is_dir() else set()
    result = run_ssl_pretrain(ssl_cfg, cfg.general, out_dir, dirs, labelled=labelled,
                              labelled_val=labelled_val, exclude_sha256=test_images,
                              logging_cfg=cfg.logging, tb_dir=ws.runs_dir / "ssl" / "tensorboard",
                              weights_dir=ws.path(cfg.general.weights_dir))
    best = result.best_metric
    log.info("best epoch %s (%s %.4f): %s; %d images, %d unreadable skipped, %.1f images/s",
             best.get("epoch"), best.get("name"), best.get("value") or float("nan"), result.best, result.images,
             result.skipped_images, result.images_per_second)
    print(result.best)
    return 0
