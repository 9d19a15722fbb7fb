"""A Ctrl-C swallowed where Python ignores exceptions still stops `up` at its next step."""

from __future__ import annotations

import os
import signal
import threading
import weakref

import pytest

from labctl import interrupts


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigint_swallowed_by_a_weakref_callback_is_still_raised_later() -> None:
    previous = signal.getsignal(signal.SIGINT)
    interrupts.install()
    try:

        class Thing:
            pass

        def callback(_ref: object) -> None:
            # The signal lands here, where the interpreter only prints "Exception ignored".
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass

        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing  # the callback runs, the KeyboardInterrupt inside it is swallowed
        assert ref() is None
        assert interrupts.received()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_received()
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts._received.clear()


def test_nothing_is_raised_without_a_signal() -> None:
    interrupts._received.clear()
    interrupts.raise_if_received()  # no exception
    assert not interrupts.received()


def test_install_outside_the_main_thread_changes_nothing() -> None:
    previous = signal.getsignal(signal.SIGINT)
    worker = threading.Thread(target=interrupts.install)
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGINT) is previous
