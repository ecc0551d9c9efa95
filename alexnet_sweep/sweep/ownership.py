"""Who runs a sweep: a claim on its grid, held by a live process, so two identical sweeps never run at once.

MLflow has no notion of run ownership: RUNNING says nothing about whether the process that started a run is alive.
A sweep therefore claims its grid with an experiment tag of its own (`sweep.claim.<grid>.<id>`: its host:pid and
the time, renewed every 30 s by a heartbeat thread) before it opens or reopens the parent run. The earliest live
claim wins; a later claimant withdraws and refuses in one line. A claim is live while it was renewed within 90 s
and, when its process runs on this host, while that process exists (so a sweep killed with SIGKILL can be resumed
at once). Distinct tag keys mean two claimants never overwrite each other, so whichever reads last sees both.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from mlflow import MlflowClient

from alexnet_sweep import names
from alexnet_sweep.tracking import one_line

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # how often a running sweep renews its claim
ALIVE_S = 3 * HEARTBEAT_S  # a claim not renewed for this long belongs to a process that is gone


class SweepBusy(Exception):
    """Another live process runs this sweep; the message says which, in one line."""


def this_process() -> str:
    """Names this process across machines: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Claim:
    """One process's claim on a grid: the experiment tag's key, the process and when it last renewed it."""

    key: str
    process: str
    renewed: float

    def alive(self, now: float) -> bool:
        """Whether the claiming process is still there (see the module's docstring)."""
        if now - self.renewed > ALIVE_S:
            return False
        host, _, pid = self.process.rpartition(":")
        return host != socket.gethostname() or not pid.isdigit() or _pid_exists(int(pid))


class GridClaim:
    """This process's claim on a grid; `release()` it when the sweep ends.

    Raises:
        SweepBusy: From the constructor, if another live process claimed the grid first.
    """

    def __init__(self, client: MlflowClient, experiment_id: str, grid: str) -> None:
        self.client, self.experiment_id = client, experiment_id
        self.prefix = f"{names.CLAIM_PREFIX}{grid}."
        self.key = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        self._renew()
        now = time.time()
        claims = self._claims()
        live = [claim for claim in claims if claim.alive(now)]
        first = min(live, key=lambda claim: (claim.renewed, claim.key))
        if first.key != self.key:
            self.client.delete_experiment_tag(experiment_id, self.key)
            raise SweepBusy(
                f"another sweep of this grid is running (process {first.process}, alive {now - first.renewed:.0f} s "
                "ago): run this command again once it has ended (its finished jobs are then skipped), or stop it"
            )
        for stale in claims:
            if not stale.alive(now):
                self.client.delete_experiment_tag(experiment_id, stale.key)
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)
        self._heartbeat.start()

    def release(self) -> None:
        """Stops renewing the claim and withdraws it (best effort: a claim not renewed expires by itself)."""
        self._stop.set()
        try:
            self.client.delete_experiment_tag(self.experiment_id, self.key)
        except Exception as err:  # the store may be what failed; the claim then expires after ALIVE_S
            log.warning("Could not withdraw the sweep's claim %s: %s", self.key, one_line(err))

    def _renew(self) -> None:
        value = json.dumps({"process": this_process(), "renewed": time.time()})
        self.client.set_experiment_tag(self.experiment_id, self.key, value)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._renew()
            except Exception as err:  # a store that refuses writes: the sweep itself will report it
                log.warning("Could not renew the sweep's claim: %s", one_line(err))

    def _claims(self) -> list[Claim]:
        claims = []
        for key, value in self.client.get_experiment(self.experiment_id).tags.items():
            if key.startswith(self.prefix):
                try:
                    data = json.loads(value)
                    claims.append(Claim(key, str(data["process"]), float(data["renewed"])))
                except (ValueError, KeyError, TypeError):
                    continue  # not one of ours
        return claims


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True
