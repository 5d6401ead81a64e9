"""Benchmark: the supervised classifiers on the synthetic sets the project generates.

    python tests/bench/bench_classifiers.py [--files 30] [--epochs 60] [--sounds 20] [--seeds 0,1,2]

1. Leak detector: a leak set (`engine.data.leak_toy.generate_leaks`: hiss-like leak noise with a flow
   modulation at -15 to +6 dB over pipe flow, pump or the noise floor, against NORMAL, QUIET, RANDOM and
   MECHANICAL files) imported with its labels; each mode trained as `earmark train leak` does (early
   stopping on file-level leak F1, the test split as validation). Figures: file-level leak F1 on the held-out
   files, training throughput (segments/s), and, measured in the same run on the same segments:
   - the throughput of a bare PyTorch loop (same model, batches and optimiser, no evaluation or checkpoints),
   - the file-level F1 of a simple baseline: logistic regression on each file's mean log-mel spectrum.
2. Sound classifier: an ESC-50-shaped set of five classes (`generate_sounds`), the CNN and the residual CNN
   with SE attention over several seeds (fold 1 held out); accuracy and macro F1, mean ± spread, against the
   same logistic-regression baseline on mean log-mel spectra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.classifiers.leak import leak_config, train_leak  # noqa: E402
from engine.classifiers.sound import sound_config, train_sound  # noqa: E402
from engine.classifiers.sound_data import ClipImage  # noqa: E402
from engine.data.importers import import_source  # noqa: E402
from engine.data.leak_toy import generate_leaks, generate_sounds  # noqa: E402
from engine.detectors.leak.model import LeakCNN  # noqa: E402
from engine.detectors.runs import Session  # noqa: E402
from engine.jobs import Progress  # noqa: E402
from engine.labels.exchange import import_labels  # noqa: E402
from engine.store import Project  # noqa: E402


def bare_loop_rate(segments: int, epochs: int = 3, batch: int = 512) -> float:
    """Segments per second of a plain training loop over random inputs of the leak model's shape."""
    x = torch.randn(segments, 1, 32, 8)
    y = torch.randint(0, 2, (segments,))
    model = LeakCNN(2)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(segments)
        for start in range(0, segments, batch):
            index = order[start : start + batch]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[index])[0], y[index])
            loss.backward()
            optimiser.step()
    return segments * epochs / (time.perf_counter() - started)


def mean_spectrum_baseline(clips, spectra: dict, truth_of, train_split) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of logistic regression on mean log-mel spectra: (truth, predicted) for held-out clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = [c for c in clips if train_split(c)]
    held = [c for c in clips if not train_split(c)]
    features = lambda cs: np.stack([spectra[c.clip_id].mean(axis=1) for c in cs])  # noqa: E731
    scaler = StandardScaler().fit(features(train))
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(features(train)), [truth_of(c) for c in train])
    return np.array([truth_of(c) for c in held]), model.predict(scaler.transform(features(held)))


def leak_part(folder: Path, files: int, epochs: int) -> None:
    from sklearn.metrics import f1_score

    source = generate_leaks(folder / "leaks", files_per_class=files, duration_s=6.0, seed=11)
    with Project.create(folder / "leak_project") as project:
        import_source(project, source)
        import_labels(project, [source / "labels.csv"])
        clips = project.clips()
        print(
            f"leak set: {len(clips)} files of 6 s ({files} per class), "
            f"{sum(c.split == 'test' for c in clips)} held out (test split)"
        )
        rows = []
        for mode in ("binary", "multiclass"):
            trained = train_leak(Session(project), leak_config(mode, {"epochs": epochs, "patience": 15}), Progress())
            m = trained.meta
            rows.append(
                (
                    f"LeakCNN {mode}",
                    m["best_file_leak_f1"],
                    m["best_epoch_figures"]["file_precision"],
                    m["best_epoch_figures"]["file_recall"],
                    trained.outcome.items_per_second,
                    f"best epoch {m['best_epoch']} of {m['epochs_run']}",
                )
            )
            segments = m["train_segments"]
        spectra = FeatureCache(project.artifacts / "features", torch.device("cpu")).features(
            clips, leak_config("binary").segments.features
        )
        truth, predicted = mean_spectrum_baseline(
            clips, spectra, lambda c: int(c.attributes["class"] == "LEAK"), lambda c: c.split != "test"
        )
        baseline_f1 = f1_score(truth, predicted)
        bare = bare_loop_rate(segments)
    print("\n| leak model | file-level leak F1 | precision | recall | training segments/s | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, f1, precision, recall, rate, note in rows:
        print(
            f"| {name} | {f1:.3f} | {precision:.3f} | {recall:.3f} | {rate:.0f} ({rate / bare:.2f} of a bare loop) "
            f"| {note} |"
        )
    print(f"| baseline: logistic regression on mean log-mel | {baseline_f1:.3f} | | | | per file |")
    print(f"bare PyTorch loop on the same model and batch size: {bare:.0f} segments/s")


def sound_part(folder: Path, count: int, seeds: str, epochs: int) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    source = generate_sounds(folder / "sounds", clips_per_class=count, duration_s=2.0, seed=5)
    with Project.create(folder / "sound_project") as project:
        import_source(project, source)
        clips = project.clips()
        print(f"\nsound set: {len(clips)} clips of 2 s, 5 classes, ESC-50 layout, fold 1 held out")
        print("| sound model | accuracy (mean ± spread) | macro F1 | seeds | training items/s |")
        print("| --- | --- | --- | --- | --- |")
        for architecture, attention in (("cnn", "none"), ("resnet", "se")):
            started = time.perf_counter()
            trained = train_sound(
                Session(project),
                sound_config(
                    {
                        "architecture": architecture,
                        "attention": attention,
                        "epochs": epochs,
                        "seeds": seeds,
                        "clip_seconds": 2.0,
                    }
                ),
            )
            s = trained.summary
            print(
                f"| {s['model']} | {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} | {s['macro_f1_mean']:.3f} ± "
                f"{s['macro_f1_std']:.3f} | {len(s['seeds'])} | {s['items_per_second']:.0f} "
                f"({time.perf_counter() - started:.0f} s in all) |"
            )
        config = sound_config({"clip_seconds": 2.0})
        spectra = FeatureCache(project.artifacts / "features", torch.device("cpu")).features(
            clips, ClipImage(config.features, "original", 2.0)
        )
        truth, predicted = mean_spectrum_baseline(
            clips, spectra, lambda c: c.attributes["class"], lambda c: c.attributes["fold"] != "1"
        )
        print(
            f"| baseline: logistic regression on mean log-mel | {accuracy_score(truth, predicted):.3f} | "
            f"{f1_score(truth, predicted, average='macro'):.3f} | | |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30, help="leak-set files per class (default 30)")
    parser.add_argument("--epochs", type=int, default=60, help="most leak epochs (default 60)")
    parser.add_argument("--sounds", type=int, default=20, help="sound clips per class (default 20)")
    parser.add_argument("--sound-epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    with tempfile.TemporaryDirectory() as folder:
        leak_part(Path(folder), args.files, args.epochs)
        sound_part(Path(folder), args.sounds, args.seeds, args.sound_epochs)


if __name__ == "__main__":
    main()
