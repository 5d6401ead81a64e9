"""What each `earmark` command is for, with example command lines: the text of `earmark COMMAND --help`.

Kept apart from the argument definitions so that each command's help reads as one piece here, and so that
`add_help` can give it to every command after the parser is built. A test checks that every command (and
every action of a command with actions, such as `labels export`) has a description and an example, and
that each example is a command line the parser accepts: a command added without help fails it.
"""

from __future__ import annotations

import argparse
import textwrap

WIDTH = 100

#: command (actions after a space) -> (what it does, example command lines).
HELP: dict[str, tuple[str, tuple[str, ...]]] = {
    "open": (
        "Open the window, on PROJECT if one is given, else on the project opened last. `earmark` with no "
        "command does the same.",
        ("earmark open ~/earmark/pumps", "earmark"),
    ),
    "toy": (
        "Write the synthetic data set: machine sounds of fan, bearing and valve in DCASE 2025's layout, "
        "with normal and anomalous clips in source and target domains, and a metadata.csv that lists every "
        "clip with its machine, section, domain, split and label. Anomalies are short transient events "
        "(impulse burst, band tone, bearing rattle, dropout) and whole-clip stationary faults (imbalance, "
        "misalignment, bearing wear, clogging, looseness); --anomalies picks one family or both.",
        (
            "earmark toy /tmp/toy --scale 0.05 --sections 3",
            "earmark toy /tmp/faults --anomalies stationary --scale 0.02 --duration 5",
        ),
    ),
    "new": (
        "Create an empty project folder (project.sqlite and its artifacts). Add recordings to it with "
        "`earmark import`.",
        ("earmark new ~/earmark/pumps",),
    ),
    "import": (
        "Add recordings to a project: a DCASE, ESC-50 or EmoDB folder, a folder of WAV files (folder "
        "names such as normal/ and anomaly/ set the label), a metadata.csv, or audio files one by one. "
        "Files already in the project (same checksum) are skipped; bad files are named and skipped while "
        "the rest are imported.",
        (
            "earmark import ~/earmark/pumps ~/recordings/pump",
            "earmark import ~/earmark/pumps /tmp/toy/metadata.csv --strict",
        ),
    ),
    "info": (
        "Count a project's clips by machine, section, domain, split and label, with the hours of audio.",
        ("earmark info ~/earmark/pumps",),
    ),
    "fit": (
        "Fit an anomaly detector on the normal training clips of each group (machine / section) and store "
        "one model per group, with the threshold above which a clip counts as anomalous. Detectors that train "
        "in epochs keep checkpoints in the project's artifacts/training/; --resume continues a cancelled or "
        "killed training from them.",
        (
            "earmark fit ~/earmark/pumps --detector knn",
            "earmark fit ~/earmark/pumps --detector dcase_ae --group fan/section_00 --set epochs=50",
            "earmark fit ~/earmark/pumps --detector dcase_ae --resume",
        ),
    ),
    "score": (
        "Score clips with the newest fitted models of a detector and store each clip's score, decision "
        "and frame scores (the lane under the spectrogram).",
        ("earmark score ~/earmark/pumps --detector knn", "earmark score ~/earmark/pumps --detector knn --split all"),
    ),
    "enrol": (
        "Add target-domain normal clips to a detector's fitted models without refitting, so that "
        "recordings of a changed machine or room stop being flagged.",
        ("earmark enrol ~/earmark/pumps --detector knn pump_0101 pump_0102",),
    ),
    "evaluate": (
        "Compute the official DCASE figures of every scored detector from the labelled test clips: AUC "
        "per domain, pAUC, precision, recall and F1 per machine and section, and the official score "
        "(their harmonic mean); with --format csv or json, one record per detector, machine and section "
        "for other programs.",
        (
            "earmark evaluate ~/earmark/pumps",
            "earmark evaluate ~/earmark/pumps --detector knn --format csv > figures.csv",
        ),
    ),
    "export": ("Write results in another tool's format.", ("earmark export dcase ~/earmark/pumps /tmp/results",)),
    "export dcase": (
        "Write anomaly_score_* and decision_result_* CSV files of the test clips, as the official "
        "DCASE evaluator reads them.",
        (
            "earmark export dcase ~/earmark/pumps /tmp/results",
            "earmark export dcase ~/earmark/pumps /tmp/results/knn --detector knn",
        ),
    ),
    "scores": (
        "Print each scored clip's score and decision from the newest model of each group, as CSV or "
        "JSON on standard output: clip_id, file, machine, section, domain, split, label, detector, model, "
        "score, decision (anomaly or normal), threshold and normalised (the score against the model's "
        "held-out training-normal scores of the clip's domain: about 0 for a normal clip; empty for scores "
        "made before it was kept).",
        (
            "earmark scores ~/earmark/pumps --detector knn > scores.csv",
            "earmark scores ~/earmark/pumps --split test --format json",
        ),
    ),
    "propose": (
        "Propose regions where a detector's frame scores are high, on every clip it scored (or the "
        "clips given), and store them as proposals to accept or reject in the window, replacing that "
        "model's earlier proposals; as the window's P key does. Levels are ratios of each model's frame "
        "threshold. Prints each clip's proposals; --dry-run stores nothing.",
        (
            "earmark propose ~/earmark/pumps --detector patch_memory",
            "earmark propose ~/earmark/pumps --detector knn --clip pump_0007 --on 1.2 --merge-gap 0.5 --dry-run",
        ),
    ),
    "threshold": (
        "Set the decision threshold of one detector's model of one group: a value (scores above it are "
        "anomalous), or the threshold that flags at most a share of the model's held-out training normals "
        "(--fpr 0.05), or --reset to the fitted one. It is kept with the model in the project; the decisions "
        "of the group's stored scores are recomputed at once, and scoring, proposals and evaluation use it. "
        "Prints the old and new threshold and how many decisions changed.",
        (
            "earmark threshold ~/earmark/pumps --detector knn --group fan/section_00 --fpr 0.05",
            "earmark threshold ~/earmark/pumps --detector knn --group fan/section_00 --value 0.42",
            "earmark threshold ~/earmark/pumps --detector knn --group fan/section_00 --reset",
        ),
    ),
    "report": (
        "Write the project's evaluation as one self-contained HTML file: the figures of `earmark evaluate`, "
        "ROC curves and score histograms with each threshold (inline SVG), the fitted and adjusted thresholds, "
        "each model's condition (trained on how many clips, when, with which settings) and the localization "
        "figures. --format csv writes the tables (OUT.csv and OUT_thresholds.csv, OUT_models.csv, "
        "OUT_localization.csv beside it); --format json all of them in one file.",
        (
            "earmark report ~/earmark/pumps pumps.html",
            "earmark report ~/earmark/pumps figures.csv --format csv --detector knn",
        ),
    ),
    "weights": (
        "Set up and check the pretrained weights of the AST and BEATs encoders. Earmark never downloads "
        "them unless allowed.",
        ("earmark weights list",),
    ),
    "weights list": (
        "Say which pretrained weights Earmark can use, where the configured ones are and where to get the others.",
        ("earmark weights list",),
    ),
    "weights add": (
        "Check a weights folder or file and remember it for NAME.",
        (
            "earmark weights add beats ~/models/BEATs_iter3_plus_AS2M.pt",
            "earmark weights add ast ~/models/ast-finetuned-audioset",
        ),
    ),
    "weights remove": (
        "Forget the weights set up for NAME (the files stay where they are).",
        ("earmark weights remove ast",),
    ),
    "weights check": (
        "Load the configured weights (or NAME's) and say whether they work.",
        ("earmark weights check", "earmark weights check beats"),
    ),
    "labels": (
        "Export labelled regions to, or import them from, the label files of Audacity, Raven, Praat "
        "(TextGrid), or CSV / JSON tables.",
        (
            "earmark labels export ~/earmark/pumps labels.csv",
            "earmark labels import ~/earmark/pumps ~/audacity-labels/",
        ),
    ),
    "labels export": (
        "Write a project's regions to label files. CSV and JSON hold every clip in one file; "
        "Audacity, Raven and TextGrid files hold one clip each, so OUT is a folder for several "
        "clips. OUT - writes to standard output (CSV unless --format says otherwise; the one-clip "
        "formats only for one clip, since their files do not name it).",
        (
            "earmark labels export ~/earmark/pumps labels.csv --kind manual proposal",
            "earmark labels export ~/earmark/pumps /tmp/audacity --format audacity",
            "earmark labels export ~/earmark/pumps - --format csv",
        ),
    ),
    "labels import": (
        "Add the regions of label files to a project as manual regions. Each file's clip is the "
        "one whose audio file has its name, unless --clip says; regions already present are "
        "skipped and bad lines named.",
        (
            "earmark labels import ~/earmark/pumps labels.csv",
            "earmark labels import ~/earmark/pumps marks.txt --clip pump_0007",
        ),
    ),
    "train": (
        "Train a supervised classifier from the project's labels: the leak detector from labelled "
        "regions, or the sound classifier from the clips' classes.",
        ("earmark train leak ~/earmark/leaks",),
    ),
    "train leak": (
        "Train the leak detector (LEAK / NOLEAK, or five classes) from the labelled regions, then "
        "score every clip with it; --resume continues from the last checkpoint.",
        ("earmark train leak ~/earmark/leaks --set epochs=30", "earmark train leak ~/earmark/leaks --resume"),
    ),
    "train classifier": (
        "Train the sound classifier from the clips' classes (ESC-50 categories, EmoDB emotions, folder names).",
        ("earmark train classifier ~/earmark/sounds --set epochs=20",),
    ),
    "toy-set": (
        "Write a synthetic set for the classifiers: leaks (with a labels.csv of the leak regions) or "
        "sounds (in the ESC-50 layout).",
        ("earmark toy-set leaks /tmp/leaks --count 20", "earmark toy-set sounds /tmp/sounds"),
    ),
    "demo": (
        "Create the demo project from the synthetic data set (once), fit knn, patch_memory, dcase_ae and "
        "their ensemble, score and evaluate, and open the window on it; --no-gui prints the figures instead.",
        ("earmark demo", "earmark demo --no-gui --scale 0.02"),
    ),
    "debug": (
        "Look inside a trained detector: train it with one branch frozen and read its loss and "
        "gradient-norm curves, or compare its frame reconstruction error on a group's normal (ok) and "
        "anomalous (ng) test clips.",
        ("earmark debug freeze ~/earmark/pumps --detector ast_ae --branch encoder --epochs 10",),
    ),
    "debug freeze": (
        "Train a detector on one group's normal training clips with BRANCH frozen for every epoch, "
        "in a scratch folder (the project's models are not replaced), and write "
        "artifacts/logs/debug_freeze_BRANCH.csv (epoch, loss per part, gradient norm per branch) "
        "and a chart of the curves beside it (.png). A frozen branch has gradient norm 0.",
        (
            "earmark debug freeze ~/earmark/pumps --detector ast_ae --branch encoder --epochs 10",
            "earmark debug freeze ~/earmark/pumps --detector dcase_ae --branch decoder --epochs 5 "
            "--group fan/section_00",
        ),
    ),
    "debug splits": (
        "Write a group's normal test clips (ok) and anomalous test clips (ng) as "
        "artifacts/logs/debug_splits/GROUP/ok.csv and ng.csv (clip_id, path, domain, label) and "
        "print how many each holds. Edit the files to compare chosen clips with `debug recon`.",
        ("earmark debug splits ~/earmark/pumps --group fan/section_00",),
    ),
    "debug recon": (
        "Print the mean and standard deviation of the frame reconstruction MSE of the group's newest "
        "fitted model on its ok and ng split (written first when `debug splits` has not been run): "
        "anomalies should reconstruct worse.",
        ("earmark debug recon ~/earmark/pumps --detector ast_ae --group fan/section_00",),
    ),
    # `set` and `relocate` describe themselves where they are defined; these say the same, for a parser
    # built without their texts.
    "set": (
        "Set the machine, section, domain, split and/or label of the clips chosen by ids, globs and --where "
        "filters, in one transaction. A glob matches clip ids (see `earmark info`) or file names; quote it so "
        'the shell leaves it alone. "none" clears a field (--label none). Models fitted on clips that '
        "change are marked stale until their group is fitted again.",
        (
            "earmark set myproject 'pump_*' --machine pump --section 00 --split train --label normal",
            "earmark set myproject --where split=test --where label=none --label normal",
            "earmark set myproject 'pump/test/*' --split test --domain source",
        ),
    ),
    "relocate": (
        "Re-point every clip whose file path starts with OLD_PREFIX to the same relative path under "
        "NEW_PREFIX. Each new file must have the clip's checksum; a file with other content is listed "
        "and left alone, as is one that is not there.",
        ("earmark relocate myproject /media/old-disk/recordings /data/recordings",),
    ),
    "repair": (
        "Rebuild a damaged project.sqlite (one that Earmark reports as damaged, or whose schema version "
        "cannot be read): the damaged file is first copied aside as project.sqlite.damaged-<time>, then "
        "every row SQLite can still read goes into a fresh file with this Earmark's schema, and the "
        "indexes are built anew. Says per table how many rows were recovered and how many were lost. "
        "It refuses while a window or another command has the project open (close them and run it "
        "again), and on a disk without room for the copy and the fresh file. Scores of models that were "
        "lost are removed (score again). Audio and artifacts are not touched.",
        ("earmark repair ~/earmark/pumps",),
    ),
}

OVERVIEW = (
    "examples:\n"
    "  earmark demo                                   the demo project, fitted, in the window\n"
    "  earmark new ~/earmark/pumps                    a new project; then:\n"
    "  earmark import ~/earmark/pumps ~/recordings/pump\n"
    "  earmark fit ~/earmark/pumps --detector knn\n"
    "  earmark score ~/earmark/pumps --detector knn\n"
    "  earmark scores ~/earmark/pumps --format json\n"
    "\n"
    "`earmark COMMAND -h` describes a command, with examples."
)


def version() -> str:
    """The installed distribution's version, else (a source tree never installed) `engine.__version__`."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("earmark")
    except PackageNotFoundError:
        from engine import __version__

        return __version__


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command and action of `parser` by its name as typed ("fit", "labels export"), parents first."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                key = f"{prefix}{name}"
                found[key] = child
                found.update(commands(child, f"{key} "))
    return found


def add_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give `parser` and each of its commands the description and examples of `HELP` (the one place they are
    written); returns `parser`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = OVERVIEW
    for key, child in commands(parser).items():
        description, examples = HELP.get(key, (None, ()))
        if description:  # kept line by line from here on (for the examples), so wrapped here
            child.description = textwrap.fill(" ".join(description.split()), WIDTH)
        if examples:
            child.epilog = (
                "example" + ("s" if len(examples) > 1 else "") + ":\n" + "\n".join(f"  {line}" for line in examples)
            )
        child.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The example command lines of a command's help (lines of its epilog that start with `earmark`, after
    an "example:" prefix if any)."""
    found = []
    for line in (parser.epilog or "").splitlines():
        text = line.strip()
        for prefix in ("examples:", "example:"):
            text = text.removeprefix(prefix).strip()
        if text == "earmark" or text.startswith("earmark "):
            found.append(text)
    return found
