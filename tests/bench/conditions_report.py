"""The condition matrix's figures: from the scored test clips of each cell (bench_conditions.py) to AUC per
cell, the matrix mean per family, the official score and decision F1 per family, the share of normals flagged,
and the tables and verdicts printed (plain or Markdown for the README).

A cell's `scored` holds (clip_id, domain, family or None for a normal clip, score, decision) per test clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.evaluation.metrics import ScoredClip, auc, official_score, section_result

FAMILIES = ("transient", "stationary")
DOMAINS = ("source", "target")
ENSEMBLE = "ensemble"
RULE_AUC, RULE_FLAGGED = 0.6, 0.15


# -- the figures --------------------------------------------------------------------------------------------
def cell_aucs(cell: dict) -> dict[tuple[str, str], float]:
    """(family, domain) -> AUC of that domain's normals against its anomalies of that family."""
    found = {}
    for family in FAMILIES:
        for domain in DOMAINS:
            chosen = [
                (fam is not None, score)
                for _, dom, fam, score, _ in cell.get("scored", [])
                if dom == domain and fam in (None, family)
            ]
            found[family, domain] = auc([a for a, _ in chosen], [s for _, s in chosen]) if chosen else math.nan
    return found


def cell_flagged(cell: dict) -> dict[str, float]:
    """Domain -> the share of that domain's normal test clips whose decision is anomalous."""
    found = {}
    for domain in DOMAINS:
        decisions = [d for _, dom, fam, _, d in cell.get("scored", []) if fam is None and dom == domain]
        found[domain] = float(np.mean(decisions)) if decisions else math.nan
    return found


def sections_of(cells: list[dict], family: str) -> list:
    """One SectionResult per machine from the cells of one (row, seed, size): normals + that family's anomalies."""
    sections = []
    for cell in cells:
        scored = [
            ScoredClip(i, dom, fam is not None, s, d)
            for i, dom, fam, s, d in cell.get("scored", [])
            if fam in (None, family)
        ]
        if any(c.is_anomaly for c in scored):
            sections.append(section_result(cell["machine"], "00", scored))
    return sections


def mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def summarise(labels: Sequence[str], cells: list[dict], sizes: Sequence[int], seeds: Sequence[int]) -> list[dict]:
    """Per row label, every figure of the tables (and more: per family and domain) as a flat dict."""
    summary = []
    for label in labels:
        mine = [c for c in cells if c["detector"] == label]
        failed = [c for c in mine if c.get("error")]
        aucs = [(c["size"], cell_aucs(c)) for c in mine if not c.get("error")]
        entry: dict = {
            "detector": label,
            "cells_failed": len(failed),
            "errors": sorted({c["error"] for c in failed})[:3],
        }
        for family in FAMILIES:
            values = [a[family, d] for _, a in aucs for d in DOMAINS]
            defined = [v for v in values if not math.isnan(v)]
            # Every cell counts: a failed or undefined cell leaves the matrix mean undefined.
            entry[f"matrix_{family}"] = (
                mean(defined) if defined and not failed and len(defined) == len(values) else math.nan
            )
            entry[f"matrix_{family}_partial"] = mean(defined)
            for domain in DOMAINS:
                entry[f"auc_{family}_{domain}"] = mean(a[family, domain] for _, a in aucs)
                for size in sizes:
                    entry[f"auc_{family}_{domain}_{size}"] = mean(a[family, domain] for s, a in aucs if s == size)
            officials, f1 = [], {d: [] for d in DOMAINS}
            for seed in seeds:
                for size in sizes:
                    group = [c for c in mine if c["seed"] == seed and c["size"] == size and not c.get("error")]
                    sections = sections_of(group, family)
                    if sections:
                        officials.append(official_score(sections))
                        f1["source"] += [s.f1_source for s in sections]
                        f1["target"] += [s.f1_target for s in sections]
            entry[f"official_{family}"] = mean(officials)
            for domain in DOMAINS:
                entry[f"f1_{family}_{domain}"] = mean(f1[domain])
        for domain in DOMAINS:
            entry[f"f1_{domain}"] = mean(entry[f"f1_{f}_{domain}"] for f in FAMILIES)
            decisions = [d for c in mine for _, dom, fam, _, d in c.get("scored", []) if fam is None and dom == domain]
            entry[f"flagged_{domain}"] = float(np.mean(decisions)) if decisions else math.nan
        normals = [d for c in mine for _, _, fam, _, d in c.get("scored", []) if fam is None]
        entry["normals_flagged"] = float(np.mean(normals)) if normals else math.nan
        entry["fit_s"] = mean(c["fit_s"] for c in mine)
        entry["score_s"] = mean(c["score_s"] for c in mine)
        entry["fails_rule"] = not all(entry[f"matrix_{f}"] >= RULE_AUC for f in FAMILIES)  # NaN fails too
        summary.append(entry)
    return summary


# -- printing -----------------------------------------------------------------------------------------------
def number(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.3f}"


def matrix_text(entry: dict, family: str) -> str:
    if not math.isnan(entry[f"matrix_{family}"]):
        return number(entry[f"matrix_{family}"])
    partial = entry[f"matrix_{family}_partial"]
    return "-" if math.isnan(partial) else f"({number(partial)})"


def tables(summary: list[dict], sizes: Sequence[int]) -> list[tuple[list[str], list[list[str]]]]:
    main = [
        "detector",
        "matrix transient",
        "matrix stationary",
        "official transient",
        "official stationary",
        "F1 source",
        "F1 target",
        "normals flagged",
        "fit s",
        "score s",
        "failed cells",
    ]
    lines = [
        [
            e["detector"],
            matrix_text(e, "transient"),
            matrix_text(e, "stationary"),
            number(e["official_transient"]),
            number(e["official_stationary"]),
            number(e["f1_source"], 2),
            number(e["f1_target"], 2),
            "-" if math.isnan(e["normals_flagged"]) else f"{e['normals_flagged']:.0%}",
            number(e["fit_s"], 2),
            number(e["score_s"], 2),
            str(e["cells_failed"]),
        ]
        for e in summary
    ]
    detail = ["detector", "family", *[f"{d[:3]} n={n}" for d in DOMAINS for n in sizes], "source", "target"]
    rows = [
        [
            e["detector"],
            family,
            *[number(e[f"auc_{family}_{d}_{n}"]) for d in DOMAINS for n in sizes],
            number(e[f"auc_{family}_source"]),
            number(e[f"auc_{family}_target"]),
        ]
        for e in summary
        for family in FAMILIES
    ]
    return [(main, lines), (detail, rows)]


def render(header: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        return [
            "| " + " | ".join(header) + " |",
            "| " + " | ".join("---" for _ in header) + " |",
            *["| " + " | ".join(row) + " |" for row in rows],
        ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))
        for r in [header, *rows]
    ]


def verdicts(summary: list[dict]) -> list[str]:
    lines = []
    failing = [e["detector"] for e in summary if e["fails_rule"]]
    lines.append(
        f"below {RULE_AUC} matrix-mean AUC on a family (or with failed cells): "
        + (", ".join(failing) if failing else "none")
    )
    flagged = [
        f"{e['detector']} {e['normals_flagged']:.0%}"
        for e in summary
        if not math.isnan(e["normals_flagged"]) and e["normals_flagged"] > RULE_FLAGGED
    ]
    lines.append(f"flagging more than {RULE_FLAGGED:.0%} of unseen normals: " + (", ".join(flagged) or "none"))
    by_label = {e["detector"]: e for e in summary}
    if ENSEMBLE in by_label:
        members = [e for e in summary if "[" not in e["detector"] and e["detector"] != ENSEMBLE]

        def figure(entry: dict, family: str) -> float:  # "both": the mean of the two families' matrix means
            return (
                (figure(entry, "transient") + figure(entry, "stationary")) / 2
                if family == "both"
                else entry[f"matrix_{family}"]
            )

        for family in (*FAMILIES, "both"):
            ens = figure(by_label[ENSEMBLE], family)
            best = max(members, key=lambda e: -1 if math.isnan(figure(e, family)) else figure(e, family), default=None)
            if best is not None and not math.isnan(figure(best, family)):
                holds = not math.isnan(ens) and ens >= figure(best, family)
                lines.append(
                    f"ensemble, {family}: {number(ens)} against its best member {best['detector']} "
                    f"{number(figure(best, family))}: {'holds' if holds else 'FAILS'}"
                )
    for entry in summary:
        key, _, rest = entry["detector"].partition("[")
        if rest and key in by_label:
            changes = [
                f"{family} {signed(entry[f'matrix_{family}_partial'] - by_label[key][f'matrix_{family}_partial'])}"
                for family in FAMILIES
            ]
            lines.append(f"{entry['detector']} against {key}'s defaults: " + ", ".join(changes))
    return lines


def finite(value):
    """`value` with every NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value
