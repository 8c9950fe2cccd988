"""One architecture from the baseline to the deployed package.

The deployment budget (ensemble.budget) is checked before the baseline trains, on the architecture
the whole chain will use: baseline -> critical species -> ensemble variants -> multi-scale all
continue from the previous stage's weights. When the configured model is over the budget, the chain
takes the largest smaller model of the same family that fits (yolov8m -> yolov8n), and says so.
Variants that set their own model_size leave the chain; the budget then applies to them instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.sections.general import GeneralConfig
from ..config.sections.stages import EnsembleConfig
from ..config.sections.training import BaselineYoloConfig
from ..log import get_logger

log = get_logger("train.chain")


@dataclass(frozen=True)
class ChainChoice:
    model_size: str
    cost: dict | None  # params/GFLOPs of the chosen architecture at the budget's imgsz; None when unchecked
    note: str


def chain_followers(ensemble: EnsembleConfig) -> list[str]:
    """The variants that continue the chain (model_size null)."""
    return [name for name, v in ensemble.variants.items() if v.model_size is None]


def choose_chain_model(model_size: str, backbone: str | None, ensemble: EnsembleConfig, nc: int) -> ChainChoice:
    """model_size, or the largest smaller model of its family whose architecture (with `backbone`)
    fits ensemble.budget; BudgetExceededError when none does. Unchecked when no variant follows."""
    from ..engines.ultralytics.backbone import compose_arch
    from ..engines.ultralytics.budget import BudgetExceededError, check_budget, smaller_models

    if not chain_followers(ensemble) or str(model_size).endswith(".pt"):
        return ChainChoice(model_size, None, "no ensemble variant follows the chain: budget not applied here")
    b = ensemble.budget
    arch = compose_arch(model_size, backbone)
    first_error = None
    for candidate in [arch, *smaller_models(arch)]:
        try:
            cost = check_budget(candidate, max_params_m=b.max_params_m, max_gflops=b.max_gflops, imgsz=b.imgsz,
                                nc=nc, label="the chain's architecture")
        except BudgetExceededError as exc:
            first_error = first_error or exc
            continue
        chosen = candidate.partition("+")[0]
        note = f"{cost.describe()} fits ensemble.budget"
        if chosen != model_size:
            note = f"{arch} is over ensemble.budget ({first_error}); the chain uses {candidate}: {cost.describe()}"
            log.warning(note)
        else:
            log.info("budget ok for the whole chain: %s", note)
        return ChainChoice(chosen, {"model": candidate, "params_m": round(cost.params_m, 3),
                                    "gflops": round(cost.gflops, 3), "imgsz": cost.imgsz}, note)
    raise BudgetExceededError(f"{first_error}. The ensemble variants continue from the baseline, so the baseline's "
                              "architecture must fit: pick a smaller backbone (efficientnet_lite0) or model, raise "
                              "ensemble.budget, or give the variants their own model_size")


def plan_chain_start(cfg: BaselineYoloConfig, general: GeneralConfig, ensemble: EnsembleConfig | None, nc: int,
                     workspace, backbone: str | None, *, keep_backbone: bool):
    """(the baseline's Start, the ChainChoice): the budget picks the model size first, so weights of a
    model too large to deploy are never fetched; then `pretrained` resolves for that size. A start that
    brings its own backbone (imagenet) is checked against the budget again."""
    from ..engines.ultralytics.backbone import split_arch
    from ..engines.ultralytics.pretrained import resolve_start

    weights_dir = workspace.path(general.weights_dir)

    def resolve(model_size: str, bb: str | None, keep: bool):
        return resolve_start(cfg.pretrained, model_size, bb, weights_dir, key="baseline_yolo.pretrained",
                             workspace_path=workspace.path, keep_backbone=keep)

    chain = choose_chain_model(cfg.model_size, backbone, ensemble, nc) if ensemble else None
    start = resolve(chain.model_size if chain else cfg.model_size, backbone, keep_backbone)
    model_size, chosen_backbone = split_arch(start.arch)
    if ensemble and chosen_backbone != backbone:
        chain = choose_chain_model(model_size, chosen_backbone, ensemble, nc)
        if chain.model_size != model_size:
            start = resolve(chain.model_size, chosen_backbone, True)
    return start, chain


def planned_ssl_backbone(cfg, workspace, nc: int) -> str:
    """`ssl_pretraining.backbone: auto`: the backbone the baseline will build, so SSL's result goes back
    into a detector of the same architecture (a foreign backbone's name, else the chain's model name)."""
    from ..engines.ultralytics.backbone import split_arch

    start, _ = plan_chain_start(cfg.baseline_yolo, cfg.general, cfg.ensemble, nc, workspace,
                                cfg.baseline_yolo.backbone, keep_backbone=False)
    model_size, backbone = split_arch(start.arch)
    chosen = backbone or model_size
    log.info("ssl_pretraining.backbone auto: %s (the backbone of the chain's %s)", chosen, start.arch)
    return chosen
