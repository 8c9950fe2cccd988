"""MoCo v3 training throughput: `run_ssl_pretrain` vs lightly's own MoCo example loop.

Same backbone (yolov8n's backbone), same batch, same images (underwater-unlabelled), same image size,
CPU. Ours is measured end to end (model build, loader, per-epoch checkpoints included).
Peers, each measured the same way (setup + loop):
- "lightly MoCo example, v3 loss": lightly's examples/pytorch/moco.py loop (LightlyDataset, lightly
  transforms, update_momentum, SGD) with MoCo v3's heads and symmetric loss, i.e. the same algorithm
  written as lightly's example writes it. This is the like-for-like comparison (target ratio >= 0.95).
- "lightly MoCo example, verbatim (v2)": the example as published (one query + one key pass per
  image, memory bank of 4096). MoCo v3 runs both views through both encoders, so roughly half the
  throughput is expected against it; reported for context.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, row, write_result  # noqa: E402

N_IMAGES, IMGSZ, BATCH, EPOCHS, SEED = 320, 64, 32, 2, 0
HIDDEN, PROJ = 1024, 128


def _subset(tmp: Path) -> Path:
    src = sorted((SHARED_DATA / "underwater-unlabelled" / "images").glob("*.jpg"))[:N_IMAGES]
    folder = tmp / "pool"
    folder.mkdir()
    for p in src:
        (folder / p.name).symlink_to(p)
    return folder


def run_ours(folder: Path, out: Path) -> float:
    from marauder.config.sections.general import GeneralConfig, LoggingConfig
    from marauder.config.sections.training import SSLPretrainingConfig
    from marauder.ssl import run_ssl_pretrain

    cfg = SSLPretrainingConfig(backbone="yolov8n", epochs=EPOCHS, batch_size=BATCH, imgsz=IMGSZ, warmup_epochs=0,
                               hidden_dim=HIDDEN, projection_dim=PROJ, probe_max_crops=0)
    general = GeneralConfig(device="cpu", num_workers=0, seed=SEED, mixed_precision=False)
    t0 = time.perf_counter()
    r = run_ssl_pretrain(cfg, general, out, [folder], logging_cfg=LoggingConfig(tensorboard=False))
    seconds = time.perf_counter() - t0
    steps = (r.images // BATCH) * EPOCHS
    return steps * BATCH / seconds


def run_lightly_example(folder: Path, v3: bool) -> float:
    """lightly's examples/pytorch/moco.py loop on our backbone; v3=True swaps in MoCo v3's heads and loss."""
    import torch
    from lightly.data import LightlyDataset
    from lightly.loss import NTXentLoss
    from lightly.models.modules import BYOLPredictionHead, MoCoProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import MoCoV2Transform

    from marauder.engines.ultralytics.backbone import yolo_backbone
    from marauder.ssl.moco import contrastive_loss

    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    backbone, dim = yolo_backbone("yolov8n")
    if v3:
        head = MoCoProjectionHead(dim, HIDDEN, PROJ, num_layers=2, batch_norm=True)
        predictor = BYOLPredictionHead(PROJ, HIDDEN, PROJ)
    else:
        head, predictor = MoCoProjectionHead(dim, 512, 128), torch.nn.Identity()
    backbone_m, head_m = copy.deepcopy(backbone), copy.deepcopy(head)
    deactivate_requires_grad(backbone_m)
    deactivate_requires_grad(head_m)
    dataset = LightlyDataset(str(folder), transform=MoCoV2Transform(input_size=IMGSZ))
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=0)
    params = [*backbone.parameters(), *head.parameters(), *predictor.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.06)
    criterion = NTXentLoss(memory_bank_size=(4096, 128))
    images = 0
    for _ in range(EPOCHS):
        for (x0, x1), _, _ in loader:
            update_momentum(backbone, backbone_m, m=0.99)
            update_momentum(head, head_m, m=0.99)
            if v3:
                q0, q1 = predictor(head(backbone(x0))), predictor(head(backbone(x1)))
                with torch.no_grad():
                    k0, k1 = head_m(backbone_m(x0)), head_m(backbone_m(x1))
                loss = contrastive_loss(q0, k1, 0.2) + contrastive_loss(q1, k0, 0.2)
            else:
                query = head(backbone(x0))
                with torch.no_grad():
                    key = head_m(backbone_m(x1))
                loss = criterion(query, key)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            images += x0.shape[0]
    return images / (time.perf_counter() - t0)


def main() -> int:
    if not SHARED_DATA.is_dir():
        print(f"skipped: {SHARED_DATA} is absent")
        return 0
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    with tempfile.TemporaryDirectory() as tmp:
        folder = _subset(Path(tmp))
        peer_v3 = run_lightly_example(folder, v3=True)
        print(f"lightly example loop, v3 loss: {peer_v3:.1f} images/s", flush=True)
        ours = run_ours(folder, Path(tmp) / "out")
        print(f"marauder MoCo v3: {ours:.1f} images/s", flush=True)
        peer_v2 = run_lightly_example(folder, v3=False)
        print(f"lightly example loop, verbatim v2: {peer_v2:.1f} images/s", flush=True)
    notes = f"yolov8n backbone, {N_IMAGES} underwater-unlabelled images, {IMGSZ}px, batch {BATCH}, {EPOCHS} epochs, CPU"
    rows = [
        row("MoCo v3 throughput", round(ours, 2), round(peer_v3, 2), "lightly MoCo example loop, v3 heads+loss",
            units="images/s", target="ratio >= 0.95", notes=notes),
        row("MoCo v3 throughput vs published v2 example", round(ours, 2), round(peer_v2, 2),
            "lightly MoCo example loop, verbatim (v2)", units="images/s",
            notes="v3 runs both views through both encoders: ~0.5 expected"),
    ]
    write_result("moco_throughput", "MoCo v3 images/s: marauder ssl-pretrain vs lightly's example loop", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
