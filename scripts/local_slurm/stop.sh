#!/usr/bin/env bash
# Stop the daemons scripts/local_slurm/start.sh started, by the pids in their pidfiles
# (never by name). --purge also deletes state and logs, and the sacct stand-in.
set -uo pipefail
export PATH=$PATH:/usr/sbin:/sbin
D=${SLURM_LOCAL_DIR:-/var/spool/slurm-local}

stop_pid() {  # name pidfile
  local name=$1 pf=$2 pid
  [ -f "$pf" ] || { echo "[local-slurm] $name: no pidfile, nothing to stop"; return 0; }
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "[local-slurm] $name ($pid) killed"
    else echo "[local-slurm] $name ($pid) stopped"; fi
  else
    echo "[local-slurm] $name: pid $pid not running"
  fi
  rm -f "$pf"
}

stop_pid slurmd "$D/run/slurmd.pid"
stop_pid slurmctld "$D/run/slurmctld.pid"
if [ -f "$D/run/munged.pid" ]; then      # only a munged that start.sh started
  stop_pid munged "$D/run/munged.pid"
  rm -f /run/munge/munged.pid
fi
if [ "${1:-}" = --purge ]; then
  rm -rf "$D"
  grep -q "rft local-slurm sacct stand-in" /usr/local/bin/sacct 2>/dev/null && rm -f /usr/local/bin/sacct
  echo "[local-slurm] purged $D and the sacct stand-in"
fi
