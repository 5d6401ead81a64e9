"""Benchmark: the patch memory's cost beyond the encoder, its peak memory against the chunk setting, and
its official score and localization beside knn and dcase_ae on the synthetic set.

    python tests/bench/bench_patch_memory.py [--seeds 0 1] [--ae-epochs 20] [--skip-quality]

1. Overhead: per 10 s clip, the encoder's own forward pass (patches of its default layers) against the
   patch-memory search that follows (nearest support patch for every query patch, the map, the score),
   for `logmel` and for an AST of the published size (12 layers, width 768; random weights saved in the
   transformers format and loaded through `earmark weights` code: the time does not depend on the values).
2. Peak memory: one search of 1212 query patches against 36360 memory patches (30 clips of AST patches,
   width 768) in a fresh process per chunk setting; peak resident memory above the loaded tensors.
3. Quality: official score and localization (per-clip frame AUROC, share of anomalous clips whose top frame
   lies in a region) of patch_memory (logmel, 3 target clips), knn and dcase_ae, per seed at scale 0.05.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.data.toy import ToyConfig  # noqa: E402
from engine.detectors import runs  # noqa: E402
from engine.detectors.patch_memory import PatchMemoryConfig, PatchMemoryDetector  # noqa: E402
from engine.evaluation.localization import localize_project  # noqa: E402
from engine.evaluation.report import evaluate_project  # noqa: E402
from tests.bench.bench_scoring import project_for  # noqa: E402

PEAK_SCRIPT = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from engine.detectors.patch_memory.memory import max_cosine
torch.set_num_threads(2)
q, m = torch.empty(1212, 768).normal_(), torch.empty(36360, 768).normal_()
q /= q.norm(dim=1, keepdim=True)  # in place: no temporary copy raises the high-water mark
m /= m.norm(dim=1, keepdim=True)
max_cosine(q[:8], m[:8], 1.0)  # warm the allocator's fixed costs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
max_cosine(q, m, {chunk})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""


def overhead(root: Path) -> None:
    from transformers import ASTConfig, ASTModel

    project = project_for(root, "overhead", ToyConfig(scale=0.01, seed=0, sections=1, machines=("fan",)))
    clips = project.clips()
    support = [c for c in clips if c.split == "train" and c.domain == "target"][:3]
    queries = [c for c in clips if c.split == "test"][:4]
    torch.manual_seed(0)
    ASTModel(ASTConfig()).save_pretrained(root / "ast-base-random")  # the published AST's size
    os.environ["EARMARK_CONFIG_DIR"] = str(root / "config")
    from engine import weights

    weights.add("ast", str(root / "ast-base-random"))
    print(f"{'encoder':<8} {'encoder ms/clip':>16} {'search ms/clip':>15} {'overhead':>9}")
    for encoder in ("logmel", "ast"):
        detector = PatchMemoryDetector(PatchMemoryConfig(encoder=encoder), cache=FeatureCache(None))
        detector.fit(support)
        detector.encoder.encode(queries[:1], patches=True)  # warm-up
        start = time.perf_counter()
        embeddings = detector.encoder.encode(queries, patches=True)
        encode_s = (time.perf_counter() - start) / len(queries)
        start = time.perf_counter()
        for embedding in embeddings.values():
            detector.map_of(embedding)
        search_s = (time.perf_counter() - start) / len(queries)
        print(f"{encoder:<8} {encode_s * 1000:16.1f} {search_s * 1000:15.1f} {search_s / encode_s:9.1%}")


def peak_memory() -> None:
    root = str(Path(__file__).resolve().parents[2])
    print(f"\n{'chunk_mb':>9} {'peak MB above tensors':>22}   (one search: 1212 x 36360 patches, width 768)")
    for chunk in (1, 4, 16, 64, 256):
        result = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT.format(root=root, chunk=chunk)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"{chunk:9d} {float(result.stdout.strip()):22.1f}")


def quality(root: Path, seeds: list[int], ae_epochs: int) -> None:
    plans = {"patch_memory": {}, "knn": {}, "dcase_ae": {"epochs": ae_epochs}}
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in plans}
    for seed in seeds:
        project = project_for(root, f"quality-{seed}", ToyConfig(scale=0.05, seed=seed))
        session = runs.Session(project)
        for name, settings in plans.items():
            runs.fit(session, name, settings)
            runs.score(session, name, "test")
        official = {r.detector: r.official for r in evaluate_project(project)}
        located = {r.detector: r for r in localize_project(project)}
        for name in plans:
            figures[name].append((official[name], located[name].frame_auroc, located[name].top_frame_hit_rate))
            print(
                f"seed {seed}  {name:<13} official {official[name]:.3f}  frame AUROC "
                f"{located[name].frame_auroc:.3f}  top frame in region {located[name].top_frame_hit_rate:.0%}"
            )
        project.close()
    print(f"\nmean over seeds {seeds} (dcase_ae at {ae_epochs} epochs):")
    for name, rows in figures.items():
        means = [statistics.mean(column) for column in zip(*rows, strict=True)]
        print(f"  {name:<13} official {means[0]:.3f}  frame AUROC {means[1]:.3f}  top frame in region {means[2]:.0%}")
    print(json.dumps({name: np.round(np.mean(rows, axis=0), 3).tolist() for name, rows in figures.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ae-epochs", type=int, default=20)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as folder:
        overhead(Path(folder))
        peak_memory()
        if not args.skip_quality:
            print()
            quality(Path(folder), args.seeds, args.ae_epochs)


if __name__ == "__main__":
    main()
