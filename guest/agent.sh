#!/bin/sh
# The console agent: reads one request per line from the serial console and answers in a frame
# the host can verify, so nothing depends on matching a prompt on a console the kernel also
# writes to.
#
# Request:  <id> <base64 of a shell command>      (echo is off; the reply markers below carry
#                                                  ':' right after the id, which the request never has)
# Reply:    <id>:O:<base64 line of stdout>        (any number)
#           <id>:R:<base64 line of stderr>        (any number)
#           <id>:E:<exit status>:<md5 of stdout+stderr base64 text>   (printed twice)
# The special command __resend__ repeats the last reply (used when a printk line corrupted it).
stty -echo -icrnl 2>/dev/null
cd /tmp
echo "harness-ready:$HARNESS_NONCE:$(cut -d' ' -f1 /proc/uptime)"
emit() {
    base64 /tmp/.agent-out > /tmp/.agent-out.b64
    base64 /tmp/.agent-err > /tmp/.agent-err.b64
    sum=$(cat /tmp/.agent-out.b64 /tmp/.agent-err.b64 | md5sum)
    sed "s/^/$1:O:/" /tmp/.agent-out.b64
    sed "s/^/$1:R:/" /tmp/.agent-err.b64
    end="$1:E:$(cat /tmp/.agent-rc):${sum%% *}"
    # Twice: a printk landing inside the first copy must not leave the host waiting for it.
    echo "$end"
    echo "$end"
}
while read -r id payload; do
    [ -n "$id" ] || continue
    cmd=$(echo "$payload" | base64 -d 2>/dev/null)
    if [ "$cmd" != __resend__ ]; then
        sh -c "$cmd" </dev/null >/tmp/.agent-out 2>/tmp/.agent-err
        echo $? > /tmp/.agent-rc
    fi
    emit "$id"
done
