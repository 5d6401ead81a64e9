"""Playback of the shown clip with QtMultimedia: play / pause, play a selection, loop, stop, and a playhead
position ~30 times a second. On a machine with no audio output the playhead still moves in real time (a
clock stands in for the player) and `message` says why nothing is heard."""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QObject, QTimer, QUrl, Signal

TICK_MS = 33


class Playback(QObject):
    position_changed = Signal(float)  # seconds
    state_changed = Signal(bool)  # playing or not
    message = Signal(str)

    def __init__(self, parent: QObject | None = None, use_audio: bool | None = None) -> None:
        super().__init__(parent)
        self.player = None
        if use_audio is not False:
            from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer

            if QMediaDevices.audioOutputs():
                self.player = QMediaPlayer(self)
                self._output = QAudioOutput(self)
                self.player.setAudioOutput(self._output)
                self.player.errorOccurred.connect(lambda _error, text: self.message.emit(f"playback: {text}"))
        self._clock = QElapsedTimer()
        self._clock_base = 0.0
        self._timer = QTimer(self, interval=TICK_MS, timeout=self._tick)
        self.path: str | None = None
        self.duration_s = 0.0
        self.range: tuple[float, float] = (0.0, 0.0)
        self.loop = False
        self.playing = False
        self.position_s = 0.0
        self._told_silent = False

    @property
    def has_audio_output(self) -> bool:
        return self.player is not None

    def load(self, path: str, duration_s: float) -> None:
        was_playing = self.playing
        if self.player is not None:
            self.player.stop()
        self._timer.stop()
        self.playing = False
        self.path, self.duration_s = path, duration_s
        self.range = (0.0, duration_s)
        self.position_s = 0.0
        if self.player is not None:
            self.player.setSource(QUrl.fromLocalFile(path))
        if was_playing:
            self.state_changed.emit(False)
        self.position_changed.emit(0.0)

    def play(self, start: float | None = None, end: float | None = None) -> None:
        """Play from `start` (default: where the playhead is) to `end` (default: the end of the clip)."""
        if self.path is None:
            return
        if start is None:
            start = self.position_s if self.position_s < self.range_end(end) - 1e-3 else 0.0
        end = self.range_end(end)
        self.range = (start if end > start else 0.0, end)
        self._seek_to(self.range[0])
        if self.player is not None:
            self.player.play()
        elif not self._told_silent:
            self._told_silent = True
            self.message.emit("No audio output device was found: the playhead moves but nothing is heard.")
        self._clock.restart()
        self._clock_base = self.range[0]
        self.playing = True
        self._timer.start()
        self.state_changed.emit(True)

    def range_end(self, end: float | None) -> float:
        return min(self.duration_s, end) if end is not None else self.duration_s

    def pause(self) -> None:
        if not self.playing:
            return
        self.position_s = self._now()
        if self.player is not None:
            self.player.pause()
        self.playing = False
        self._timer.stop()
        self.state_changed.emit(False)
        self.position_changed.emit(self.position_s)

    def toggle(self) -> None:
        """Pause, or resume where it paused (to the end of the selection being played, if any)."""
        if self.playing:
            self.pause()
            return
        start, end = self.range
        if start <= self.position_s < end - 1e-3:
            self._resume(self.position_s)
        else:
            self.play(self.position_s if self.position_s < self.duration_s - 1e-3 else 0.0)

    def _resume(self, position: float) -> None:
        self._seek_to(position)
        if self.player is not None:
            self.player.play()
        self._clock.restart()
        self._clock_base = position
        self.playing = True
        self._timer.start()
        self.state_changed.emit(True)

    def stop(self) -> None:
        was_playing = self.playing
        if self.player is not None:
            self.player.stop()
        self.playing = False
        self._timer.stop()
        self.position_s = self.range[0] if self.range[1] < self.duration_s else 0.0
        if was_playing:
            self.state_changed.emit(False)
        self.position_changed.emit(self.position_s)

    def seek(self, seconds: float) -> None:
        seconds = max(0.0, min(self.duration_s, seconds))
        self.range = (0.0, self.duration_s)
        self._seek_to(seconds)
        self._clock.restart()
        self._clock_base = seconds
        self.position_changed.emit(seconds)

    def _seek_to(self, seconds: float) -> None:
        self.position_s = seconds
        if self.player is not None:
            self.player.setPosition(round(seconds * 1000))

    def _now(self) -> float:
        if self.player is not None:
            return self.player.position() / 1000.0
        return self._clock_base + self._clock.elapsed() / 1000.0

    def _tick(self) -> None:
        position = self._now()
        start, end = self.range
        at_end = position >= end - 0.002 or (
            self.player is not None and self.player.mediaStatus() == self.player.MediaStatus.EndOfMedia
        )
        if at_end:
            if self.loop:
                self.play(start, end)
                return
            self.position_s = end
            self.position_changed.emit(end)
            if self.player is not None:
                self.player.pause()
            self.playing = False
            self._timer.stop()
            self.position_s = start if end < self.duration_s else end
            self.state_changed.emit(False)
            return
        self.position_s = position
        self.position_changed.emit(position)
