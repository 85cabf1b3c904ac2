"""The guest: QEMU argv as data, the initramfs and scratch disks, booting a machine, the console and
SSH transports, console.log, and cached snapshots of a booted guest."""
