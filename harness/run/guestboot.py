"""Fresh guests for a run: restored from the snapshot cache, or booted cold (and then saved).

The first cold boot of a (kernel, initramfs, QEMU argv, accelerator) saves the guest at its
snapshot point (vm/snapshot.py); later fresh guests, in this run or the next, restore it. A
snapshot that cannot be restored is discarded and the guest boots cold. What happened to each
guest is kept in `info`, the fingerprint's "snapshot" entry.
"""

from __future__ import annotations

import os
import time

from harness.errors import MachineError
from harness.model import Progress
from harness.vm import disks, image, machine, qemu, snapshot


class FreshGuests:
    def __init__(self, spec: machine.MachineSpec, mode: str, say: Progress) -> None:
        self.spec, self.mode, self.say = spec, mode, say
        self.guests: list[dict[str, object]] = []
        self.info: dict[str, object] = {"mode": mode, "guests": self.guests}
        self._keys: dict[str, str] = {}  # snapshot cache key per accelerator

    def __call__(self, replacing: bool) -> machine.Machine:
        """A fresh guest; `replacing`: an earlier guest of this run was lost or replaced, so the
        scratch disks it wrote are made anew."""
        t0 = time.monotonic()
        if self.mode == "off":
            m = self._cold(None, replacing)
            self.guests.append({"how": "cold", "s": round(time.monotonic() - t0, 2)})
            return m
        plan, _ = machine.accel_plan(self.spec.accel)
        key = self.key(plan[0])
        self.info["key"] = key
        entry, why = snapshot.lookup(key)
        if entry is not None:
            try:
                for src, dst in zip((entry.path / n for n in snapshot.DISKS), self.spec.drives, strict=False):
                    snapshot.copy_sparse(src, dst)
                m = machine.restore(self.spec, entry.vmstate, plan[0], self.say)
                self.guests.append({"how": "restore", "s": round(time.monotonic() - t0, 2), "key": key})
                return m
            except (MachineError, OSError) as e:
                why = f"restore from {key} failed: {e}"
        if why:
            snapshot.discard(key)  # damaged: a cold boot saves a good one in its place
            self.say(f"{why}; booting cold")
            self.info["fallback_reason"] = why
        saver = self._saver() if snapshot.writable() else None
        try:
            m = self._cold(saver, replacing)
        except MachineError as e:
            if saver is None or not saver.reached:
                raise
            # It reached its snapshot point and broke in the save (the migration, the `cont`
            # after it): the guest itself boots; once more without saving.
            self.info["save_error"] = f"the guest broke while being saved: {e}"
            self.say(f"the guest broke while being saved ({e}); booting cold without a snapshot")
            m = self._cold(None, replacing)
        self.guests.append(
            {"how": "cold", "s": round(time.monotonic() - t0, 2), **({"why": why} if why else {})}
        )
        return m

    def key(self, accel: str) -> str:
        """The cache key for this run's guest under `accel` (computed once per accelerator)."""
        if accel not in self._keys:
            qspec = machine.qemu_spec(self.spec, accel, image.require_qemu())
            norm = snapshot.normalized_argv(
                qemu.argv(qspec),
                qspec.kernel,
                qspec.initrd,
                qspec.monitor_socket,
                qspec.drives,
                qspec.ssh_port,
            )
            self._keys[accel], _ = snapshot.snapshot_key(
                kernel=qspec.kernel,
                initrd=qspec.initrd,
                argv=norm,
                qemu_version=qemu.version(qspec.qemu),
                qemu_bin=qspec.qemu,
                accel=accel,
            )
        return self._keys[accel]

    def _cold(self, at_point: machine.AtPoint | None, replacing: bool) -> machine.Machine:
        if replacing:
            disks.make(self.spec.run_dir)  # the lost guest's disks are dirty
        return machine.boot(self.spec, self.say, at_point)

    def _saver(self) -> machine.AtPoint:
        def save(qspec: qemu.QemuSpec, point_uptime: float) -> None:
            key = self.key(qspec.accel)
            self.info["key"] = key
            if snapshot.lookup(key)[0] is not None:
                return  # another run saved it meanwhile
            t0 = time.monotonic()
            w = snapshot.Writer(key)
            try:
                fd = w.vmstate_fd()
                try:
                    machine.save_at_point(qspec, fd)
                finally:
                    os.close(fd)
                w.add_disks(self.spec.drives)
                machine.resume_after_save(qspec)
                e = w.commit(
                    {"kernel": self.spec.kernel.release, "accel": qspec.accel, "point_uptime_s": point_uptime}
                )
                self.info.update(
                    {"saved": key, "save_s": round(time.monotonic() - t0, 2), "size_bytes": e.size_bytes()}
                )
                self.say(
                    f"guest saved as snapshot {key} ({e.size_bytes() / 2**20:.0f} MiB) "
                    f"in {time.monotonic() - t0:.1f}s"
                )
            except (MachineError, OSError) as e:
                w.abort()
                self.info["save_error"] = str(e)
                self.say(f"could not save a snapshot: {e}")
                try:
                    machine.resume_after_save(qspec)
                except MachineError:
                    pass

        return machine.AtPoint(save)
