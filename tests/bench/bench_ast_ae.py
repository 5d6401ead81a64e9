"""Benchmark: what an epoch of `ast_ae` costs on one group, at its default size and at the published AST size,
beside `dcase_ae`'s epoch on the same clips (measured in the same run, so the ratios hold whatever else loads
the machine).

    python tests/bench/bench_ast_ae.py [--clips 20] [--steps 2] [--device cpu|cuda]

The data: one section of the project's synthetic set, `--clips` normal source training clips of 10 s.
1. `dcase_ae` (the baseline, its defaults): fitted for 1 and for 11 epochs (features cached first); an epoch
   is a tenth of the difference (so reading the clips and learning the threshold do not count).
2. `ast_ae` at its defaults (a 4 x 128 AST from scratch, 2.56 s windows, 16 x 16 patches at stride 16): fitted
   for 2 epochs through the real code; the epoch is the second epoch's `seconds` in its history (the first
   carries one-off costs). 80 % of the clips train (the rest are held out for the threshold).
3. `ast_ae` at the published AST size (transformers' `ASTConfig` defaults: 12 layers x 768, 10.24 s windows,
   patches at stride 10, 1212 per window; random weights saved in the transformers format and set up through
   `earmark weights` as a user's would be: the time does not depend on the values): `--steps` optimiser steps
   of 2 windows in each of 2 epochs of the shared Trainer, the second timed; its epoch on the same clips is
   extrapolated from the time per window (a 10 s clip is one window at this size, four at the default).
With `--device cuda` the same runs on the GPU, with mixed precision (the Trainer's AMP).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.data.toy import ToyConfig  # noqa: E402
from engine.detectors.ast_ae import AstAEConfig, AstAEDetector  # noqa: E402
from engine.detectors.dcase_ae import DcaseAEConfig, DcaseAEDetector  # noqa: E402
from engine.jobs import Progress  # noqa: E402
from tests.bench.bench_scoring import project_for  # noqa: E402


def dcase_epoch(clips, cache, device) -> float:
    cache.features(clips, DcaseAEConfig().features)  # read once, before either fit is timed
    times = {}
    for epochs in (1, 11):
        detector = DcaseAEDetector(DcaseAEConfig(epochs=epochs), cache=cache, device=device)
        started = time.perf_counter()
        detector.fit(clips)
        times[epochs] = time.perf_counter() - started
    return (times[11] - times[1]) / 10


def ast_default_epoch(clips, cache, device) -> tuple[float, int, int]:
    """(seconds of the second epoch, windows per epoch, clips trained on)."""
    detector = AstAEDetector(AstAEConfig(epochs=2), cache=cache, device=device)
    detector.fit(clips)
    trained = detector.info["trained_clips"]
    windows = sum(len(w) for w, _ in detector._windows(clips[:1], Progress()).values()) * trained
    return detector.history[-1]["seconds"], windows, trained


def seconds_per_window(detector: AstAEDetector, clips, steps: int) -> float:
    """The Trainer's time per window over `steps` steps of 2 windows (the second of two epochs)."""
    from engine.training import LoopConfig, Trainer

    windows = detector._windows(clips, Progress())
    data = torch.cat(list(w for w, _ in windows.values()))[: 2 * steps]
    loop = LoopConfig(epochs=2, patience=3, batch_size=2, learning_rate=5e-5)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(
            detector.network(),
            folder,
            loop,
            detector.device,
            detector._loss,
            None,
            "",
            "bench",
            branches=detector.branches(),
        )
        outcome = trainer.run(data, {}, Progress())
    return outcome.history[-1]["seconds"] / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=20, help="10 s training clips in the group")
    parser.add_argument("--steps", type=int, default=2, help="timed steps at the published size")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        os.environ["EARMARK_CONFIG_DIR"] = str(root / "config")  # the published-size weights stay in here
        config = ToyConfig(
            scale=0.01,
            seed=0,
            duration_s=10.0,
            sections=1,
            machines=("fan",),
            test_each=1,
            train_counts=(args.clips, 1),
        )
        project = project_for(root, "ast_ae", config)
        clips = [c for c in project.clips() if c.split == "train" and c.domain == "source"][: args.clips]
        cache = FeatureCache(root / "features", device)
        print(
            f"ast_ae epoch time on {device.type} ({torch.get_num_threads()} threads"
            f"{', ' + torch.cuda.get_device_name() if device.type == 'cuda' else ''}): one group of {len(clips)} "
            f"10 s clips; load average at start {os.getloadavg()[0]:.2f}",
            flush=True,
        )

        baseline = dcase_epoch(clips, cache, device)
        print(f"  dcase_ae (defaults, the baseline): {baseline:.2f} s per epoch", flush=True)

        epoch, windows, trained = ast_default_epoch(clips, cache, device)
        default = AstAEDetector(AstAEConfig(), cache=cache, device=device)
        per_window = seconds_per_window(default, clips, args.steps)
        print(
            f"  ast_ae default (4 x 128 from scratch): {epoch:.2f} s per epoch ({trained} clips, {windows} windows "
            f"of 2.56 s; {1000 * per_window:.0f} ms per window in the {args.steps}-step timing): "
            f"{epoch / baseline:.1f} x dcase_ae",
            flush=True,
        )

        from transformers import ASTConfig, ASTModel

        from engine import weights

        torch.manual_seed(0)
        ASTModel(ASTConfig()).save_pretrained(root / "ast-published-size")
        weights.add("ast", str(root / "ast-published-size"))
        published = AstAEDetector(dataclasses.replace(AstAEConfig(), encoder="pretrained"), cache=cache, device=device)
        per_window = seconds_per_window(published, clips, args.steps)
        big_epoch = per_window * trained  # one 10.24 s window per 10 s clip
        print(
            f"  ast_ae at the published size (12 x 768, stride 10, 1024 frames): {per_window:.2f} s per window "
            f"({args.steps} steps of 2), so about {big_epoch:.1f} s per epoch of the same {trained} clips: "
            f"{big_epoch / baseline:.0f} x dcase_ae, {big_epoch / epoch:.0f} x the default ast_ae",
            flush=True,
        )


if __name__ == "__main__":
    main()
