"""The labelling flow: the label editor (keyboard and mouse edits, each saved at once and undoable), the
region table, proposals from detectors and the review queue."""
