"""Benchmark: the condition matrix. Every unsupervised detector x anomaly family (transient, stationary) x domain
(source, target) x training size x seed, on the synthetic set: AUC per cell, the official score per family,
decision F1 per domain, the share of unseen normal test clips flagged, fit and score time.

    python tests/bench/bench_conditions.py [--quick] [--detectors knn dcase_ae] [--sizes 3 10 50] [--seeds 0 1 2]
        [--set knn:memmixup=false] [--set "knn:distance=cosine k=5"] [--json OUT] [--markdown] [--workers 2]
    EARMARK_SOURCE=/path/to/an/older/checkout python tests/bench/bench_conditions.py   # the same, older code

The data: per seed and machine type (fan, bearing, valve; one section each) the project's generator writes
`max(sizes)` source and 10 target normal training clips (DCASE gives about 10 target clips, so size 50 means
50 source + 10 target; sizes 3 and 10 mean that many of each), and `test_each` test clips per domain and label,
the anomalies cycling through every transient and stationary kind. A training size uses the first clips of
each domain, so the sets are nested. A detector is fitted once per (seed, machine, size) on the normals, which
do not depend on the family, and scores one test set holding the normals and both families' anomalies.

A cell is one detector, seed, machine, size, family and domain; its AUC is that domain's normal test clips
against that domain's anomalous test clips of that family. The matrix mean of a family is the mean over every
cell of that family (a detector that failed on a cell has no matrix mean: it fails the 0.6 rule). The official
score of a family is the DCASE harmonic mean over the three machines' sections (engine.evaluation.metrics:
AUC source and target against all of the section's anomalies of that family, pAUC), averaged over seeds and
sizes; F1 per domain is the decision F1 over that domain's normals and anomalies of the family, averaged.
"Normals flagged" is the share of normal test clips (unseen) whose decision is anomalous; the threshold rule
should keep it near or below 15 %.

Full run: 10 s clips, 24 test clips per domain and label, sizes 3 10 50, seeds 0 1 2, each detector's own
epochs. --quick: 4 s clips, 12 test clips per domain and label, the same sizes, seeds 0 1, at most 50 epochs.
`ast_ae` trains a transformer in every cell and costs the most: its --quick row alone (`--detectors ast_ae
--workers 1`) takes about 4.5 minutes on 2 shared cores (18 fits of 13.6 s and their scoring, 0.6 s each); it
is not one of the ensemble's default members, so an ensemble row does not add it.
Seeds vary both the data and each detector's own `seed` setting. Fit and score times exclude computing the
log-mel features, which are cached for every clip before the clock starts (the app caches them likewise).
`ensemble`, where registered, is built with `EnsembleDetector.from_members` from the members fitted in the same
cell (every other detector's default row), so its fit time is its members' fit times plus the combination.
A detector that fails on a cell is reported in that cell and the run goes on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, os.environ.get("EARMARK_SOURCE", str(Path(__file__).resolve().parents[2])))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.data import toy_sounds  # noqa: E402
from engine.data.importers import import_source  # noqa: E402
from engine.data.toy import ToyConfig, generate  # noqa: E402
from engine.detectors.registry import detector_class, detector_keys, make_config  # noqa: E402
from engine.store import Project  # noqa: E402

# The report beside this file, found also when EARMARK_SOURCE puts an older checkout (and its tests) first.
sys.path.insert(1, str(Path(__file__).resolve().parent))
from conditions_report import (
    DOMAINS,
    ENSEMBLE,
    FAMILIES,
    cell_aucs,
    cell_flagged,
    finite,
    render,
    summarise,
    tables,
    verdicts,
)  # noqa: E402,I001

MACHINES = ("fan", "bearing", "valve")
TARGET_AVAILABLE = 10  # DCASE's target-domain training clips per section


@dataclass(frozen=True)
class Plan:
    duration_s: float
    test_each: int
    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    max_epochs: int | None  # None: each detector's own


FULL = Plan(10.0, 24, (3, 10, 50), (0, 1, 2), None)
QUICK = Plan(4.0, 12, (3, 10, 50), (0, 1), 50)


@dataclass(frozen=True)
class Row:
    """One line of the table: a detector with its defaults, or a variant of its settings."""

    key: str
    settings: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.key + (f"[{', '.join(f'{k}={v}' for k, v in self.settings.items())}]" if self.settings else "")


# -- the data -----------------------------------------------------------------------------------------------
def toy_config(plan: Plan, seed: int, machine: str) -> tuple[ToyConfig, str]:
    """The generator's config for one machine and seed, and a note when the generator is an older one."""
    fields = {f.name for f in dataclasses.fields(ToyConfig)}
    base = dict(seed=seed, duration_s=plan.duration_s, sections=1, machines=(machine,))
    if {"anomalies", "train_counts", "test_each"} <= fields:
        # A clip depends only on the seed and its place in the plan: one machine alone gives the same clips.
        return ToyConfig(
            **base,
            scale=0.01,
            anomalies="all",
            test_each=plan.test_each,
            train_counts=(max(plan.sizes), TARGET_AVAILABLE),
        ), ""
    scale = max(plan.sizes) / 990
    return ToyConfig(**base, scale=scale), (
        f"this generator has no train_counts/test_each/anomalies: scale {scale:.3f}"
        " (3 target clips, 5 test clips per domain and label, transients only)"
    )


def family_of(clip) -> str | None:
    if clip.label != "anomaly":
        return None
    kind = clip.attributes.get("anomaly_kind")
    if kind in FAMILIES:
        return kind
    stationary = getattr(toy_sounds, "STATIONARY_KINDS", ())
    return "stationary" if clip.attributes.get("anomaly_type") in stationary else "transient"


def training_set(clips: list, size: int) -> list:
    """The first `size` normal training clips of each domain (nested over sizes), and every supplemental clip."""
    chosen = []
    for domain in DOMAINS:
        normals = sorted(
            (c for c in clips if c.split == "train" and c.domain == domain and c.label != "anomaly"),
            key=lambda c: c.clip_id,
        )
        chosen += normals[:size]
    return chosen + [c for c in clips if c.split == "supplemental"]


# -- one unit of work: a seed and a machine, every row and size ---------------------------------------------
def config_for(row: Row, seed: int, plan: Plan):
    config = make_config(row.key, row.settings)
    names = {f.name for f in dataclasses.fields(config)}
    extra = {}
    if "seed" in names and "seed" not in row.settings:
        extra["seed"] = seed
    if plan.max_epochs is not None and "epochs" in names and "epochs" not in row.settings:
        extra["epochs"] = min(plan.max_epochs, config.epochs)
    return dataclasses.replace(config, **extra)


def feature_spec(detector):
    """The log-mel settings a detector reads (as engine.detectors.min_duration finds them), or None."""
    config, encoder = detector.config, getattr(detector, "encoder", None)
    return (
        getattr(config, "features", None)
        or getattr(getattr(config, "segments", None), "features", None)
        or getattr(encoder, "config", None)
    )


def ensemble_fit(cls, detector, fitted: dict, train: list, seed: int, plan: Plan):
    """An ensemble's fit that builds it with `from_members` from the members fitted in this cell (a member
    with settings of its own in `member_settings` is fitted here), and the seconds the reused members took."""
    config = detector.config
    own = getattr(config, "settings_for", lambda key: {})
    reused = {key: fitted[key] for key in config.members if key in fitted and not own(key)}

    def fit():
        members = []
        for key in config.members:
            if key in reused:
                members.append(reused[key][0])
            else:  # not fitted in this cell (it failed, or has other settings): fitted now, and timed
                member = detector_class(key)(config_for(Row(key, own(key)), seed, plan), cache=detector.cache)
                member.fit(train)
                members.append(member)
        return cls.from_members(members, config)

    return fit, sum(seconds for _, seconds in reused.values())


def measure(fit, test: list) -> tuple[dict, object]:
    """Fit (`fit()` returns the fitted detector; timed) and score `test` (timed): the cell's figures, or its
    error."""
    cell: dict = {"fit_s": None, "score_s": None, "error": None}
    try:
        started = time.perf_counter()
        fitted = fit()
        cell["fit_s"] = time.perf_counter() - started
        started = time.perf_counter()
        detections = fitted.score(test)
        cell["score_s"] = time.perf_counter() - started
    except Exception as exc:  # a detector failing on a cell is a result, not the end of the run
        cell["error"] = f"{type(exc).__name__}: {exc}"
        return cell, None
    by_id = {d.clip_id: d for d in detections}
    cell["scored"] = [
        (c.clip_id, c.domain, family_of(c), float(by_id[c.clip_id].score), bool(by_id[c.clip_id].decision))
        for c in test
        if c.clip_id in by_id
    ]
    cell["unscored"] = len(test) - len(cell["scored"])
    return cell, fitted


def run_unit(seed: int, machine: str, plan: Plan, rows: list[Row], data_root: str) -> dict:
    """Every row and size on one seed's data for one machine: a cell per (row, size), with its scored clips."""
    import torch

    if os.environ.get("BENCH_WORKER_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_WORKER_THREADS"]))
    config, note = toy_config(plan, seed, machine)
    data = Path(data_root) / (f"{machine}-seed{seed}-{plan.duration_s:g}s-train{max(plan.sizes)}-test{plan.test_each}")
    if not (data / "metadata.csv").is_file():
        generate(data, config, workers=1)
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "project") as project:
        import_source(project, data, "metadata")
        clips = project.clips()
        test = [c for c in clips if c.split == "test"]
        cache = FeatureCache(Path(scratch) / "features")
        cells = []
        for size in plan.sizes:
            train = training_set(clips, size)
            fitted: dict[str, tuple[object, float]] = {}
            for row in rows:
                cell = {
                    "detector": row.label,
                    "seed": seed,
                    "machine": machine,
                    "size": size,
                    "train_source": sum(c.domain == "source" and c.split == "train" for c in train),
                    "train_target": sum(c.domain == "target" and c.split == "train" for c in train),
                }
                try:
                    cls = detector_class(row.key)
                    detector = cls(config_for(row, seed, plan), cache=cache)
                    spec = feature_spec(detector)
                    if spec is not None:  # features computed before the clock starts
                        cache.features(clips, spec)
                except Exception as exc:
                    cells.append({**cell, "error": f"{type(exc).__name__}: {exc}", "fit_s": None, "score_s": None})
                    continue
                if row.key == ENSEMBLE and hasattr(cls, "from_members"):
                    fit, reused = ensemble_fit(cls, detector, fitted, train, seed, plan)
                    figures, fitted_one = measure(fit, test)
                    if figures["fit_s"] is not None:
                        figures["fit_s"] += reused
                    cell["members"] = list(detector.config.members)
                else:
                    figures, fitted_one = measure(
                        lambda detector=detector, train=train: (detector.fit(train), detector)[1], test
                    )
                cells.append({**cell, **figures})
                if fitted_one is not None and not row.settings:
                    fitted[row.key] = (fitted_one, figures["fit_s"])
    return {"seed": seed, "machine": machine, "note": note, "cells": cells}


# -- the run ------------------------------------------------------------------------------------------------
def ensemble_members() -> list[str]:
    """The ensemble's default members (every detector fitted on normal clips but those it leaves out unless
    named, as `ast_ae`; all of them in an older checkout)."""
    try:
        from engine.detectors.ensemble.detector import default_members
    except ImportError:
        return [k for k in detector_keys() if k != ENSEMBLE]
    return list(default_members())


def parse_rows(detectors: list[str], sets: list[str]) -> tuple[list[Row], list[str]]:
    """Default rows for `detectors` (ensemble members added, so it can be built from them), then one row per
    --set "KEY:name=value [name=value ...]"."""
    notes, keys = [], list(dict.fromkeys(detectors))
    if ENSEMBLE in keys:
        missing = [k for k in ensemble_members() if k not in keys]
        if missing:
            notes.append(f"added the ensemble's members: {', '.join(missing)}")
        keys = [k for k in keys if k != ENSEMBLE] + missing + [ENSEMBLE]  # members are fitted first
    rows = [Row(k) for k in keys]
    for text in sets:
        key, sep, pairs = text.partition(":")
        if not sep or "=" not in pairs:
            raise SystemExit(f"--set {text!r}: write DETECTOR:name=value (several separated by spaces)")
        settings = dict(pair.split("=", 1) for pair in pairs.split())
        make_config(key.strip(), settings)  # a misspelt setting stops the run now, not in every cell
        rows.append(Row(key.strip(), settings))
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter clips, fewer test clips, seeds 0 1, <= 50 epochs")
    parser.add_argument("--detectors", nargs="+", default=None, help="default: every unsupervised detector")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="DETECTOR:name=value",
        help="a variant of a detector's settings, shown as its own row (repeatable)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="at most this many epochs for trained detectors")
    parser.add_argument("--duration", type=float, default=None, help="clip length in seconds")
    parser.add_argument("--test-each", type=int, default=None, help="test clips per domain and label")
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes, one (seed, machine) each at a time"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="keep (and reuse) the generated clips here; reuse them only with the same generator",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every cell and the summary here")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown (README)")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    plan = Plan(
        args.duration or base.duration_s,
        args.test_each or base.test_each,
        tuple(args.sizes or base.sizes),
        tuple(args.seeds if args.seeds is not None else base.seeds),
        args.epochs if args.epochs is not None else base.max_epochs,
    )
    rows, notes = parse_rows(args.detectors or detector_keys(), args.sets)
    load = os.getloadavg()
    epochs = "each detector's own" if plan.max_epochs is None else f"<= {plan.max_epochs}"
    print(
        f"condition matrix{' (--quick)' if args.quick else ''}: {len(rows)} rows x {len(MACHINES)} machines x "
        f"sizes {list(plan.sizes)} x seeds {list(plan.seeds)}; {plan.duration_s:g} s clips, {plan.test_each} test "
        f"clips per domain and label; epochs {epochs}; "
        f"{args.workers} worker(s); load average at start {load[0]:.2f}",
        flush=True,
    )
    print(f"  training size n: the first n source and min(n, {TARGET_AVAILABLE}) target normal clips of the section")
    for note in notes:
        print(f"  {note}")
    started = time.perf_counter()
    cpu_before = sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    units = [(seed, machine) for seed in plan.seeds for machine in MACHINES]
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        data_root = str(args.data or Path(scratch) / "data")
        if args.workers <= 1:
            outcomes = ((u, lambda u=u: run_unit(*u, plan, rows, data_root)) for u in units)
        else:
            os.environ["BENCH_WORKER_THREADS"] = "1"  # one thread per process: the processes share the cores
            pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"))
            futures = {pool.submit(run_unit, *u, plan, rows, data_root): u for u in units}
            outcomes = ((futures[f], f.result) for f in as_completed(futures))
        for unit, result in outcomes:
            try:
                found = result()
            except Exception as exc:  # the unit's data could not be made: its cells fail, the rest go on
                found = {
                    "seed": unit[0],
                    "machine": unit[1],
                    "note": "",
                    "cells": [
                        {
                            "detector": r.label,
                            "seed": unit[0],
                            "machine": unit[1],
                            "size": s,
                            "error": f"{type(exc).__name__}: {exc}",
                            "fit_s": None,
                            "score_s": None,
                        }
                        for r in rows
                        for s in plan.sizes
                    ],
                }
            results.append(found)
            errors = [f"{c['detector']} n={c['size']}: {c['error']}" for c in found["cells"] if c.get("error")]
            print(
                f"  seed {unit[0]} {unit[1]:<8} done at {time.perf_counter() - started:6.0f} s"
                + (f"; failed: {'; '.join(errors)}" if errors else "")
                + (f" ({found['note']})" if found["note"] else ""),
                flush=True,
            )
        if args.workers > 1:
            pool.shutdown()
    wall = time.perf_counter() - started
    # CPU seconds of this process and its finished workers: what the run costs whatever else loads the machine.
    cpu = (
        sum(
            u.ru_utime + u.ru_stime
            for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
        )
        - cpu_before
    )
    cells = [c for r in results for c in r["cells"]]
    summary = summarise([r.label for r in rows], cells, plan.sizes, plan.seeds)
    print(
        f"\nwall time {wall:.0f} s, CPU time {cpu:.0f} s (all processes); load average at end "
        f"{os.getloadavg()[0]:.2f}\n"
    )
    for header, lines in tables(summary, plan.sizes):
        print("\n".join(render(header, lines, markdown=False)) + "\n")
    print("\n".join(verdicts(summary)))
    if args.markdown:
        print()
        for header, lines in tables(summary, plan.sizes):
            print("\n".join(render(header, lines, markdown=True)) + "\n")
    if args.json:
        clean = [
            {k: v for k, v in c.items() if k != "scored"}
            | {"auc": {f"{f}/{d}": a for (f, d), a in cell_aucs(c).items()}, "normals_flagged": cell_flagged(c)}
            for c in cells
        ]
        args.json.write_text(
            json.dumps(
                finite(
                    {
                        "plan": dataclasses.asdict(plan),
                        "wall_s": wall,
                        "cpu_s": cpu,
                        "load_at_start": load[0],
                        "summary": summary,
                        "cells": clean,
                    }
                ),
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
