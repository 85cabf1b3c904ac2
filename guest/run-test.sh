#!/bin/sh
# run-test.sh NAME ARGV...: run one test program with its KTAP result lines mirrored into the
# kernel log as "harness: ok N <id>" markers. A kernel report printed between two markers
# belongs to the case in between, and the results that came before a crash survive it on the
# serial console. The taint flags are read around every case; a change is reported as a
# diagnostic of the case it happened in. The filter is awk, not a shell read loop: the shell's
# read takes a byte per system call, which costs seconds per program under TCG.
name=$1
shift
# The test environment init prepared (the console agent has it already; SSH sessions do not).
[ -r /etc/harness/test-env ] && . /etc/harness/test-env
kmsg() { echo "<4>harness: $*" > /dev/kmsg; }
kmsg "begin $name"
{ "$@"; echo "$?" > /tmp/.run-test-rc; } | awk '
function taint(   t) {
    t = ""
    getline t < "/proc/sys/kernel/tainted"
    close("/proc/sys/kernel/tainted")
    return t
}
BEGIN { was = taint() }
/^(not )?ok / {
    now = taint()
    if (now != was)
        print "# harness: kernel taint changed during this case: " was " -> " now
    was = now
    print
    print "<4>harness: " $0 > "/dev/kmsg"
    close("/dev/kmsg")
    next
}
{ print }'
rc=$(cat /tmp/.run-test-rc 2>/dev/null || echo 255)
read -r t < /proc/sys/kernel/tainted
[ "$t" = 0 ] || t=$(cat /proc/sys/kernel/tainted)
kmsg "end $name rc=$rc tainted=$t"
exit "$rc"
