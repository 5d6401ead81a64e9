"""While the window lives, reference cycles are collected in the GUI thread only: a cycle left by another
thread (the engine thread during a fit, say) is not collected there, where deleting Qt objects of the GUI
thread would crash the process, but on the GUI thread's timer; when the window is shut down, automatic
collection is back."""

from __future__ import annotations

import gc
import threading


class Cycle:
    """A reference cycle that says on which thread it was collected."""

    def __init__(self, heard: list[str]) -> None:
        self.me = self
        self.heard = heard

    def __del__(self) -> None:
        self.heard.append(threading.current_thread().name)


def test_a_cycle_left_by_a_worker_thread_is_collected_in_the_gui_thread(window, qtbot):
    heard: list[str] = []

    def worker() -> None:
        Cycle(heard)
        # Enough allocation that automatic collection, were it on, would run here, on this thread.
        for _ in range(3):
            junk = [[] for _ in range(gc.get_threshold()[0] * 2)]
            for item in junk:
                item.append(junk)
            del junk

    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()

    qtbot.waitUntil(lambda: bool(heard), timeout=5000)
    assert heard == [threading.main_thread().name]


def test_automatic_collection_is_back_once_the_window_is_shut_down(window):
    assert not gc.isenabled()

    window.shutdown()

    assert gc.isenabled()
