#!/bin/sh
# The console agent (PID 1 after init): reads one request per line from the serial console and
# answers in a frame the host can verify, so nothing depends on matching a prompt on a console
# the kernel also writes to.
#
# Request:  <id>/<limit_s> <base64 of a shell command>   (echo is off; reply markers carry ':'
#                                                          right after the id, requests never do)
# Reply:    <id>:Z:                               (stdout is gzip-compressed)
#           <id>:O:<base64 line of stdout>        (any number)
#           <id>:R:<base64 line of stderr>        (any number)
#           <id>:T:                               (only if the command hit its limit and was killed)
#           <id>:E:<exit status>:<md5 of the O and R base64 text>   (printed twice)
# The command runs in its own session; after limit_s seconds every process of that session (in
# whatever process group) and every descendant is killed (a hung test must not outlive its verdict), and
# the reply still comes: the host tells "test hung" (a T frame) from "kernel hung" (no frame).
# The request `<id>/0 !resend` repeats the last reply (a printk line corrupted it).
stty -echo -icrnl 2>/dev/null
cd /tmp
echo "harness-ready:$HARNESS_NONCE:$(cut -d' ' -f1 /proc/uptime)"
rc=0
kill_session() {
    # Every process of session $sid, and every descendant of its leader even if it made a
    # session of its own (from /proc/PID/stat: field 4 is the parent, field 6 the session).
    doomed=" $sid "
    grew=1
    while [ $grew = 1 ]; do
        grew=0
        for p in /proc/[0-9]*; do
            n=${p#/proc/}
            case "$doomed" in *" $n "*) continue ;; esac
            st=
            read -r st < "$p/stat" 2>/dev/null
            set -- ${st##*) }
            case "$doomed" in *" ${2:-x} "*) doomed="$doomed$n "; grew=1; continue ;; esac
            [ "${4:-}" = "$sid" ] && { doomed="$doomed$n "; grew=1; }
        done
    done
    for n in $doomed; do kill -KILL "$n" 2>/dev/null; done
}
emit() {
    # stdout is gzipped (a Z line says so): test output is text, the serial line is slow.
    if [ -s /tmp/.agent-out ]; then
        gzip -1 -c /tmp/.agent-out | base64 > /tmp/.agent-out.b64
        echo "$1:Z:"
    else
        : > /tmp/.agent-out.b64
    fi
    base64 /tmp/.agent-err > /tmp/.agent-err.b64
    sum=$(cat /tmp/.agent-out.b64 /tmp/.agent-err.b64 | md5sum)
    sed "s/^/$1:O:/" /tmp/.agent-out.b64
    sed "s/^/$1:R:/" /tmp/.agent-err.b64
    [ -e /tmp/.agent-timedout ] && echo "$1:T:"
    end="$1:E:$rc:${sum%% *}"
    # Twice: a printk landing inside the first copy must not leave the host waiting for it.
    echo "$end"
    echo "$end"
}
while read -r req payload; do
    [ -n "$req" ] || continue
    id=${req%%/*}
    limit=${req#*/}
    [ "$limit" = "$req" ] && limit=0
    if [ "$payload" != "!resend" ]; then
        rm -f /tmp/.agent-timedout
        echo "$payload" | base64 -d > /tmp/.agent-cmd 2>/dev/null
        setsid sh /tmp/.agent-cmd </dev/null >/tmp/.agent-out 2>/tmp/.agent-err &
        pid=$!
        wd=
        if [ "$limit" -gt 0 ] 2>/dev/null; then
            (sleep "$limit"; : > /tmp/.agent-timedout; sid=$pid; kill_session) 2>/dev/null &
            wd=$!
        fi
        wait "$pid"
        rc=$?
        [ -n "$wd" ] && kill "$wd" 2>/dev/null
    fi
    emit "$id"
done
