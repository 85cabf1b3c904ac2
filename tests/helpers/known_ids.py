"""Case ids that reports, expectations and earlier results key on: a rename must not drop them."""

FIRST_SLICE_IDS = (
    "cow.fork.child-keeps-data.base",
    "cow.fork.child-keeps-data.thp",
    "cow.fork-mprotect.child-keeps-data.base",
    "cow.fork-mprotect.child-keeps-data.thp",
    "cow.vmsplice.unmap-in-child.base",
    "cow.vmsplice.unmap-in-child.thp",
    "cow.iouring.mprotect-ro-rw.base",
    "cow.iouring.mprotect-ro-rw.thp",
    "cow.iouring.fork-while-registered.base",
    "probe.pfnmap.vvar.process-vm-readv",
    "probe.pfnmap.vvar.proc-self-mem",
)
