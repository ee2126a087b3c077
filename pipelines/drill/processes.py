"""The pipeline under drill: ``fleet run <processor>`` instances as child processes, kept running.

:class:`Supervisor` plays the part Kubernetes plays in production: an instance that exits (killed by
the drill or by itself) is started again after ``restart_delay_s``, with the same instance id and
state directory (a restarted pod of a StatefulSet). The drill depends on the processors only through
this command line, their consumer groups and their topics and stores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Instance", "ProcessEvent", "Supervisor"]

logger = logging.getLogger(__name__)


@dataclass
class ProcessEvent:
    """Something that happened to an instance: ``start``, ``exit`` (with its code) or a signal sent."""

    at: float  # time.time()
    instance: str
    what: str
    detail: str = ""


@dataclass
class Instance:
    """One instance of one processor: ``<processor>.<index>``."""

    processor: str
    index: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    held: bool = False  # stopped on purpose: not restarted
    expected_exit: bool = False  # the drill killed it: its exit is no crash
    starts: int = 0
    crashes: int = 0  # exits the drill did not cause
    crash_times: list[float] = field(default_factory=list)  # time.monotonic() of each
    restart_at: float | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.processor}.{self.index}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    """Starts the instances and restarts any that exits, until :meth:`stop_all`."""

    def __init__(
        self, run_dir: Path, base_env: Mapping[str, str], tag: str, restart_delay_s: float = 1.0
    ) -> None:
        self.run_dir = run_dir
        self.tag = tag  # in instance ids, which end up in cluster-wide transactional ids
        self.base_env = dict(base_env)
        self.restart_delay_s = restart_delay_s
        self.instances: dict[str, Instance] = {}
        self.events: list[ProcessEvent] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- instances ---------------------------------------------------------------------------------------
    def add(self, processor: str, index: int, extra_env: Mapping[str, str] | None = None) -> Instance:
        """Declare instance ``index`` of ``processor`` (the old ``_`` spelling is taken as its hyphenated
        name), with its own state directory and instance id."""
        processor = processor.replace("_", "-")
        name = f"{processor}.{index}"
        env = {
            **self.base_env,
            "FLEET_STATE_DIR": str(self.run_dir / "state" / name),
            "FLEET_INSTANCE_ID": f"{self.tag}-{index}",
            **(extra_env or {}),
        }
        inst = Instance(processor, index, env, self.run_dir / "logs" / f"{name}.log")
        with self._lock:
            self.instances[name] = inst
        return inst

    def of(self, processor: str) -> list[Instance]:
        """The instances of ``processor`` (written with ``-`` or ``_``)."""
        name = processor.replace("_", "-")
        with self._lock:
            return [i for i in self.instances.values() if i.processor == name]

    def start(self, inst: Instance) -> None:
        with self._lock:
            inst.log_path.parent.mkdir(parents=True, exist_ok=True)
            if inst._log is not None:
                inst._log.close()
            inst._log = inst.log_path.open("ab")
            inst.proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "run", inst.processor],
                env=inst.env,
                stdout=inst._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            inst.starts += 1
            inst.held = False
            inst.expected_exit = False
            inst.restart_at = None
            self._event(inst, "start", f"pid {inst.proc.pid}")

    def start_all(self) -> None:
        for inst in list(self.instances.values()):
            if not inst.alive:
                self.start(inst)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="drill-supervisor", daemon=True)
            self._thread.start()

    # -- faults ------------------------------------------------------------------------------------------
    def kill(self, inst: Instance) -> None:
        """SIGKILL the instance's process group; the supervisor starts it again."""
        self._signal(inst, signal.SIGKILL, expected_exit=True)

    def pause(self, inst: Instance) -> None:
        """SIGSTOP: the process stops dead, sockets open (a stalled network or a GC pause, as Kafka sees it)."""
        self._signal(inst, signal.SIGSTOP)

    def resume(self, inst: Instance) -> None:
        self._signal(inst, signal.SIGCONT)

    def hold(self, inst: Instance, timeout: float = 30.0) -> None:
        """Stop the instance cleanly (SIGTERM) and do not restart it: scaling in."""
        with self._lock:
            inst.held = True
            inst.expected_exit = True
            proc = inst.proc
        if proc is not None and proc.poll() is None:
            self._event(inst, "signal", "SIGTERM (scale in)")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(inst, signal.SIGKILL, expected_exit=True)

    def _signal(self, inst: Instance, sig: int, *, expected_exit: bool = False) -> None:
        with self._lock:
            proc = inst.proc
            if proc is None or proc.poll() is not None:
                raise RuntimeError(f"{inst.name} is not running")
            if expected_exit:
                inst.expected_exit = True
            self._event(inst, "signal", signal.Signals(sig).name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    # -- watching ----------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                for inst in self.instances.values():
                    proc = inst.proc
                    if proc is not None and proc.poll() is not None and inst.restart_at is None:
                        code = proc.returncode
                        crashed = not inst.expected_exit
                        if crashed:
                            inst.crashes += 1
                            inst.crash_times.append(now)
                        self._event(
                            inst, "exit", f"code {code}{' (not caused by the drill)' if crashed else ''}"
                        )
                        if crashed:
                            logger.warning(
                                "%s exited by itself with %s; log %s", inst.name, code, inst.log_path
                            )
                        if inst.held:
                            inst.proc = None  # seen; a held instance stays down
                        else:  # back off as Kubernetes does for a crash loop: 1, 2, 4, ... 30 s
                            recent = len([t for t in inst.crash_times if now - t <= 120.0]) if crashed else 0
                            delay = min(30.0, self.restart_delay_s * 2 ** max(0, recent - 1))
                            inst.restart_at = now + delay
                    if inst.restart_at is not None and now >= inst.restart_at and not inst.held:
                        self.start(inst)

    def stop_all(self, grace_s: float = 20.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            live = [i for i in self.instances.values() if i.alive]
            for inst in live:
                inst.held = inst.expected_exit = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(inst.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
                    os.killpg(inst.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace_s
        for inst in live:
            assert inst.proc is not None
            try:
                inst.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0fs; killing it", inst.name, grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(inst.proc.pid, signal.SIGKILL)
                inst.proc.wait(10)
        for inst in self.instances.values():
            if inst._log is not None:
                inst._log.close()
                inst._log = None

    # -- reporting ---------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Instances that should run and do not (held ones excluded)."""
        with self._lock:
            return [i.name for i in self.instances.values() if not i.held and not i.alive]

    def crash_looping(self, count: int = 3, within_s: float = 120.0) -> dict[str, str]:
        """Instances that exited by themselves ``count`` times within the last ``within_s`` seconds, with
        the last error line of their log: restarting them does not help."""
        now = time.monotonic()
        out = {}
        with self._lock:
            for inst in self.instances.values():
                if len([t for t in inst.crash_times if now - t <= within_s]) >= count:
                    out[inst.name] = self.last_error(inst)
        return out

    def last_error(self, inst: Instance) -> str:
        errors = [
            line for line in self.log_tail(inst, 20000).splitlines() if "Error" in line or "Exception" in line
        ]
        return errors[-1][:300] if errors else "?"

    def crashes(self) -> dict[str, int]:
        with self._lock:
            return {i.name: i.crashes for i in self.instances.values() if i.crashes}

    def log_tail(self, inst: Instance, chars: int = 3000) -> str:
        try:
            with inst.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - chars))
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def _event(self, inst: Instance, what: str, detail: str) -> None:
        self.events.append(ProcessEvent(time.time(), inst.name, what, detail))
        logger.info("%s: %s %s", inst.name, what, detail)
