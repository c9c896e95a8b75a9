# Process bookkeeping for the local cluster: every process the scripts start
# is recorded by PID in $FLEET_RUN/<name>.pid together with its start time
# (field 22 of /proc/<pid>/stat, fixed for the life of a process and unchanged
# by exec), so `down` stops exactly those processes and never a stranger that
# reused a PID after a reboot.

proc_pid() {
  local f="$FLEET_RUN/$1.pid"
  [ -s "$f" ] && head -n1 "$f"
}

proc_starttime() {
  # The command name in field 2 may contain spaces: cut after the last ')'.
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'
}

# proc_alive NAME: true if the recorded PID is still the process we started.
proc_alive() {
  local f="$FLEET_RUN/$1.pid" pid started
  [ -s "$f" ] || return 1
  pid=$(sed -n 1p "$f"); started=$(sed -n 2p "$f")
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  [ "$(proc_starttime "$pid")" = "$started" ]
}

# start_proc NAME EXECUTABLE ARGS... : starts in its own session, logs to
# $FLEET_LOGS/NAME.log. Does nothing if it already runs.
start_proc() {
  local name="$1"; shift
  if proc_alive "$name"; then
    log "$name already running (pid $(proc_pid "$name"))"
    return 0
  fi
  mkdir -p "$FLEET_RUN" "$FLEET_LOGS"
  setsid "$@" >>"$FLEET_LOGS/$name.log" 2>&1 < /dev/null &
  local pid=$!
  printf '%s\n%s\n%s\n' "$pid" "$(proc_starttime "$pid")" "$*" > "$FLEET_RUN/$name.pid"
  log "started $name (pid $pid, log $FLEET_LOGS/$name.log)"
}

# stop_proc NAME [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace period.
stop_proc() {
  local name="$1" grace="${2:-10}" pid
  if proc_alive "$name"; then
    pid=$(proc_pid "$name")
    kill -TERM "$pid" 2>/dev/null || true
    local i=0
    while [ -e "/proc/$pid" ] && [ $i -lt $((grace * 5)) ]; do sleep 0.2; i=$((i + 1)); done
    if [ -e "/proc/$pid" ]; then
      log "$name (pid $pid) ignored SIGTERM for ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name"
  fi
  rm -f "$FLEET_RUN/$name.pid"
}

# fail_proc NAME: print the tail of a component's log and exit; used when a
# component does not become healthy before its deadline.
fail_proc() {
  local name="$1" what="$2"
  echo "---- last lines of $FLEET_LOGS/$name.log ----" >&2
  tail -n 25 "$FLEET_LOGS/$name.log" >&2 2>/dev/null || true
  die "$what. The cluster is left as is for inspection; run 'tests/kind/cluster down' to clean it."
}
