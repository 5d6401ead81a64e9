"""Supervised classifiers trained from what a project knows: the leak detector (a small CNN over short
32-band mel segments cut from the labelled regions, judged per file by long-segment voting) and the sound
classifier (a spectrogram CNN over whole clips with a class, with grouped augmentation and leak-free splits).

`leak.train_leak` / `sound.train_sound` are the calls the CLI and the window make; `engine.training.Trainer`
is the epoch loop they share with every trained detector (checkpoints, resume, early stopping, mixed precision
on CUDA).
"""
