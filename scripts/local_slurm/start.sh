#!/usr/bin/env bash
# Start a real one-node SLURM cluster (Debian 12: slurm-wlm 22.05 + munge) on this machine, for
# tests and for trying `hardware=slurm_*` without a cluster. Root, no systemd, no cgroups, no
# accounting database. Idempotent: when the cluster is already up it only checks its health.
#
#   sudo scripts/local_slurm/start.sh      # install (apt, first time), configure, start, wait for the node
#   sudo scripts/local_slurm/stop.sh       # stop the daemons this script started (by pidfile)
#   sudo scripts/local_slurm/stop.sh --purge   # ... and delete state, logs and the sacct stand-in
#
# Knobs (environment):
#   SLURM_LOCAL_DIR      state, logs, pidfiles (default /var/spool/slurm-local)
#   SLURM_LOCAL_CPUS     CPUs the node offers (default: what `slurmd -C` finds, at least 8)
#   SLURM_LOCAL_MEM_MB   memory the node offers (default: what `slurmd -C` finds, minus 1 GiB)
#   SLURM_LOCAL_NO_INSTALL=1   fail instead of apt-get installing missing packages
#
# Partition `local` (the default). Tuned for tests: a requeued job starts again within ~10 s
# (AuthInfo cred_expire=5 and a 2 s scheduler interval; SLURM's defaults take 2 minutes), and
# finished jobs stay in `scontrol show job` for an hour (what the sacct stand-in reads).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin   # slurmctld, slurmd, munged, mungekey

D=${SLURM_LOCAL_DIR:-/var/spool/slurm-local}
CONF=/etc/slurm/slurm.conf
T0=$EPOCHREALTIME
log() { printf '[local-slurm %5.1fs] %s\n' "$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$*"; }
die() {
  echo "[local-slurm] ERROR: $*" >&2
  for f in "$D"/log/*.log; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "run as root (the daemons and /etc/slurm need it)"

# ------------------------------------------------------------------------------ 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  [ "${SLURM_LOCAL_NO_INSTALL:-0}" = 1 ] && die "slurm/munge not installed (SLURM_LOCAL_NO_INSTALL=1)"
  log "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # The packages' postinst scripts try to start the services; without systemd that fails
  # harmlessly (or is blocked by policy-rc.d). This script starts the daemons itself below.
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$D"/ctld "$D"/d "$D"/log "$D"/run
HOST=$(hostname -s)

# ------------------------------------------------------------------------------ 2. munge
[ -s /etc/munge/munge.key ] || { log "creating the munge key"; mungekey --create --keyfile=/etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  log "starting munged"
  rm -f /run/munge/munged.pid
  # munged refuses to run as root with a munge-owned key: run it as `munge`, as systemd would.
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null 2>&1 || die "munged did not come up"
  cp /run/munge/munged.pid "$D/run/munged.pid"   # stop.sh stops munged only if we started it
fi

# ------------------------------------------------------------------------------ 3. slurm.conf
read -r AUTO_CPUS AUTO_MEM < <(slurmd -C | awk '/^NodeName/ {
  for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["CPUs"], v["RealMemory"] }')
# At least 8 CPUs even on a smaller machine (SlurmdParameters=config_overrides): tests run several
# 1-CPU jobs at once, and without cgroups a job is not confined to its CPUs anyway.
CPUS=${SLURM_LOCAL_CPUS:-$(( AUTO_CPUS > 8 ? AUTO_CPUS : 8 ))}
MEM=${SLURM_LOCAL_MEM_MB:-$((AUTO_MEM - 1024))}
WANT=$(cat <<CONF_EOF
# Written by rft's scripts/local_slurm/start.sh: one node, root daemons, no cgroups, no accounting.
ClusterName=local
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
CredType=cred/munge
StateSaveLocation=${D}/ctld
SlurmdSpoolDir=${D}/d
SlurmctldPidFile=${D}/run/slurmctld.pid
SlurmdPidFile=${D}/run/slurmd.pid
SlurmctldLogFile=${D}/log/slurmctld.log
SlurmdLogFile=${D}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${D}/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
MailProg=/bin/true
MinJobAge=3600
KillWait=10
SlurmdTimeout=60
SlurmdParameters=config_overrides
InactiveLimit=0
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF_EOF
)
CHANGED=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$WANT" ]; then
  log "writing $CONF"
  mkdir -p "$(dirname "$CONF")"
  printf '%s\n' "$WANT" > "$CONF"
  CHANGED=1
fi

# ------------------------------------------------------------------------------ 4. daemons
stop_daemon() {  # pidfile: TERM, wait up to 10 s (node changes need a restart, not a reconfigure)
  local pid; pid=$(cat "$1"); kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"; rm -f "$1"
}
if [ "$CHANGED" = 1 ]; then
  for d in slurmd slurmctld; do
    if alive "$D/run/$d.pid"; then log "slurm.conf changed: restarting $d"; stop_daemon "$D/run/$d.pid"; fi
  done
fi
if alive "$D/run/slurmctld.pid"; then
  log "slurmctld already running (pid $(cat "$D/run/slurmctld.pid"))"
else
  log "starting slurmctld"
  /usr/sbin/slurmctld -f "$CONF"          # daemonizes; writes SlurmctldPidFile
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld does not answer"

if alive "$D/run/slurmd.pid"; then
  log "slurmd already running (pid $(cat "$D/run/slurmd.pid"))"
else
  log "starting slurmd"
  /usr/sbin/slurmd -f "$CONF"             # daemonizes; writes SlurmdPidFile
fi

state=""
for i in $(seq 150); do
  state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -1)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*) [ $((i % 10)) = 1 ] && { scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true; } ;;
  esac
  sleep 0.2
done
case "$state" in idle|mixed|allocated|completing) ;; *) die "node $HOST is '$state', not idle" ;; esac

# ------------------------------------------------------------------------------ 5. sacct stand-in
# submitit learns a job's state from `sacct -o JobID,State,NodeList --parsable2 -j ID`. Without an
# accounting database the real sacct exits 1, submitit then thinks every job is UNKNOWN, and a job
# that died before writing its result is waited on forever. This stand-in answers that one query
# from slurmctld's memory (`scontrol show job`; finished jobs stay there MinJobAge=3600 s) and
# passes any other call to the real sacct (-c: the jobcomp text log).
cat > /usr/local/bin/sacct <<'SHIM_EOF'
#!/usr/bin/env bash
# rft local-slurm sacct stand-in (installed by scripts/local_slurm/start.sh, removed by stop.sh --purge)
REAL=/usr/bin/sacct
ids=() fmt="" parsable=0 other=0
while [ $# -gt 0 ]; do
  case "$1" in
    -j|--jobs) ids+=("${2//,/ }"); shift 2 ;;
    -j*) ids+=("${1#-j}"); shift ;;
    --jobs=*) ids+=("${1#--jobs=}"); shift ;;
    -o|--format) fmt=$2; shift 2 ;;
    --format=*) fmt=${1#--format=}; shift ;;
    -P|--parsable2) parsable=1; shift ;;
    *) other=1; shift ;;
  esac
done
if [ "$other" = 1 ] || [ "$parsable" = 0 ] || [ "$fmt" != "JobID,State,NodeList" ]; then
  exec "$REAL" -c "$@"
fi
echo "JobID|State|NodeList"
scontrol -o show job 2>/dev/null | awk -v want="${ids[*]}" '
  BEGIN { n = split(want, w, /[ ,]+/); for (i = 1; i <= n; i++) { sub(/_.*/, "", w[i]); if (w[i] != "") keep[w[i]] = 1 } }
  {
    delete f
    for (i = 1; i <= NF; i++) { p = index($i, "="); if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1) }
    id = f["JobId"]; arr = f["ArrayJobId"]; task = f["ArrayTaskId"]
    if (n > 0 && !(id in keep) && !(arr in keep)) next
    if (arr != "" && task != "") jid = (task ~ /^[0-9]+$/) ? arr "_" task : arr "_[" task "]"
    else jid = id
    nl = f["NodeList"]; if (nl == "(null)" || nl == "") nl = "None assigned"
    print jid "|" f["JobState"] "|" nl
  }'
SHIM_EOF
chmod 755 /usr/local/bin/sacct
hash -r

log "cluster up: node $HOST ($CPUS CPUs, $MEM MB) is $state; partition 'local'; logs in $D/log"
