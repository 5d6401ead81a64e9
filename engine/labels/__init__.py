"""Labels beyond the region store: exchange with other tools' label files, and proposed regions.

- `engine.labels.formats` reads and writes one file's text: Audacity label tracks, Raven selection
  tables, Praat TextGrids (`textgrid`), and CSV / JSON tables of many clips (`tables`);
- `engine.labels.exchange` exports a project's regions to those files and imports them into a project;
- `engine.labels.proposals` turns a detector's frame scores into regions for the user to review.

Kept free of imports, so loading one of these modules does not load the others.
"""
