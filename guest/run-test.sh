#!/bin/sh
# run-test.sh NAME ARGV...: run one test program with its KTAP result lines mirrored into the
# kernel log as "harness: ok N <id>" markers. A kernel report printed between two markers
# belongs to the case in between, and the results that came before a crash survive it on the
# serial console. The taint flags are read around every case; a change is reported as a
# diagnostic of the case it happened in.
name=$1
shift
kmsg() { echo "<4>harness: $*" > /dev/kmsg; }
taint() {  # 0 in the common case without a fork (a read at offset >0 of this file gives EOF)
    c=
    read -r c < /proc/sys/kernel/tainted
    if [ "$c" = 0 ]; then echo 0; else cat /proc/sys/kernel/tainted; fi
}
was=$(taint)
kmsg "begin $name"
{ "$@"; echo "$?" > /tmp/.run-test-rc; } | while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
    "ok "* | "not ok "*)
        now=$(taint)
        [ "$now" != "$was" ] && echo "# harness: kernel taint changed during this case: $was -> $now"
        was=$now
        printf '%s\n' "$line"
        kmsg "$line"
        ;;
    *) printf '%s\n' "$line" ;;
    esac
done
rc=$(cat /tmp/.run-test-rc 2>/dev/null || echo 255)
kmsg "end $name rc=$rc tainted=$(taint)"
exit "$rc"
