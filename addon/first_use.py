"""The free body's first use inside Blender: where its cache goes, and building it without freezing the UI.

The Anny model builds its data once per machine (about 50 MB, :mod:`posecore.bodies.anny_cache`). Inside
Blender the cache goes to the extension's own user folder (``bpy.utils.extension_path_user``, e.g.
``~/.config/blender/4.2/extensions/.user/user_default/posefit/cache/anny``), unless ``ANNY_CACHE_DIR`` or
``POSEFIT_CACHE_DIR`` say otherwise. :class:`BackgroundTask` runs the build in a thread while the Import Body
operator's modal loop shows its steps and the elapsed time in the status bar, the progress indicator and the
panel.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

ENV_VARIABLES = ("ANNY_CACHE_DIR", "POSEFIT_CACHE_DIR")
_set_here: list[str] = []


def use_extension_cache_folder(package: str) -> str | None:
    """Point posecore's cache (``POSEFIT_CACHE_DIR``) at the extension's user folder, unless the environment
    chooses one; returns the folder, or None when it is left alone (an env variable is set, or ``package`` is
    not an installed extension, such as a checkout registered by ``addon/batch.py``)."""
    import bpy

    if any(os.environ.get(name) for name in ENV_VARIABLES):
        return None
    try:
        folder = bpy.utils.extension_path_user(package, path="cache", create=True)
    except (ValueError, KeyError, AttributeError):
        return None
    os.environ["POSEFIT_CACHE_DIR"] = folder
    _set_here.append(folder)
    return folder


def forget_extension_cache_folder() -> None:
    """Undo :func:`use_extension_cache_folder` (on unregister)."""
    while _set_here:
        folder = _set_here.pop()
        if os.environ.get("POSEFIT_CACHE_DIR") == folder:
            del os.environ["POSEFIT_CACHE_DIR"]


def free_body_needs_building() -> bool:
    """True when loading the free body would build its cache first (seconds to a minute), not just load it."""
    from posecore.bodies import anny_body, anny_cache

    return "anny" not in anny_body._MODEL_CACHE and not anny_cache.is_ready(anny_body.anny_cache_dir())


class BackgroundTask:
    """Runs ``work`` in a thread, collecting the free body build's steps (``anny_cache.report_steps_to``).

    Poll :attr:`done`; then :attr:`error` holds the exception it raised, if any. :meth:`status_text` is one
    line for the status bar.
    """

    def __init__(self, work: Callable[[], object], what: str) -> None:
        self.what = what
        self.step = "starting"
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(work,), name="posefit-first-use", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        from posecore.bodies import anny_cache

        try:
            with anny_cache.report_steps_to(self._on_step):
                work()
        except BaseException as exc:  # reported to the user by the operator
            self.error = exc

    def _on_step(self, step: str) -> None:
        self.step = step

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.started

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def status_text(self) -> str:
        return f"PoseFit: {self.what} (first use only): {self.step}, {self.elapsed:.0f} s"
