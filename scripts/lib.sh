# Shared by the measurement scripts in scripts/ (source it; it only defines functions):
# a pinned echo-server started and stopped by its ready line, and CPU steal from /proc/stat.

# Steal and total jiffies of /proc/stat's aggregate cpu line, as "STEAL TOTAL".
jiffies() { awk '/^cpu /{t=0; for(i=2;i<=9;i++) t+=$i; print $9, t}' /proc/stat; }

# steal_between S0 T0 S1 T1: the percentage of CPU time stolen between two jiffies readings.
steal_between() {
    awk -v a="$(($3 - $1))" -v b="$(($4 - $2))" 'BEGIN{printf "%.2f", (b>0)?100*a/b:0}'
}

# start_server LOG BIN IMPL [FLAGS...]: runs `BIN IMPL --threads 1 FLAGS` pinned to CPU 0 with
# its stderr in LOG, waits up to 30 s for its `listening URL` line, and sets SERVER_PID and
# SERVER_URL. A server that does not get ready ends the script with its stderr.
start_server() {
    local log=$1 bin=$2 impl=$3 fifo ready
    shift 3
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    taskset -c 0 "$bin" "$impl" --threads 1 "$@" >"$fifo" 2>"$log" &
    SERVER_PID=$!
    if ! read -r -t 30 ready <"$fifo"; then
        rm -f "$fifo"
        kill "$SERVER_PID" 2>/dev/null || true
        echo "echo-server $impl exited or stayed silent for 30 s without its ready line; its stderr:" >&2
        cat "$log" >&2
        exit 1
    fi
    rm -f "$fifo"
    SERVER_URL=${ready#listening }
}

# stop_server: SIGTERM to the server start_server started, then reap it.
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
}
