#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (`make slurm`, `make slurm-stop`): the real
# scheduler for trying `-m hydra/launcher=slurm` and for the cluster tests, no systemd and
# no container. Debian's munge, slurmctld and slurmd (installed if missing; root) run as
# plain daemons with their config, state, spool, pid and log files under outputs/slurm/
# (git ignores it), on ports of their own, so a system SLURM is left alone.
#
#   scripts/slurm.sh start    install if needed, write the config, start the daemons, wait
#                             until the node is idle; quick when it is up already
#   scripts/slurm.sh stop     cancel its jobs, stop the daemons, wait until none is left
#   scripts/slurm.sh status   whether it is up (exit 0) or not (exit 1)
#
# Accounting and cgroups are off (no slurmdbd, no database): `sacct` does not answer, so the
# launcher reads job states from `squeue` (object_displacement.slurm).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SLURM_LOCAL_DIR:-$ROOT/outputs/slurm}
CONF=$DIR/slurm.conf
MUNGE=$DIR/munge
SOCKET=$MUNGE/munge.socket
CTLD_PORT=${SLURM_LOCAL_PORT:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
PACKAGES=(munge slurmctld slurmd slurm-client)
START_TIMEOUT_S=60   # a cold start takes a few seconds; a minute means something is wrong
STOP_TIMEOUT_S=30
export SLURM_CONF=$CONF

say() { echo "slurm: $*"; }
fail() { echo "error: slurm: $*" >&2; exit 1; }

pid_of() {  # pid_of NAME PIDFILE: the pid in the file, if that process is alive and is NAME
    local name=$1 file=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] && echo "$pid"
}

node_state() { sinfo --noheader --Node --format=%T 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-'; }

is_up() {
    pid_of munged "$MUNGE/munged.pid" >/dev/null && pid_of slurmctld "$DIR/slurmctld.pid" >/dev/null &&
        pid_of slurmd "$DIR/slurmd.pid" >/dev/null && scontrol ping 2>/dev/null | grep -q UP &&
        [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}

install_packages() {
    local missing=()
    for cmd in munged slurmctld slurmd sbatch; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || fail "${missing[*]} missing: install ${PACKAGES[*]} (apt-get, needs root)"
    say "installing ${PACKAGES[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

write_config() {
    # the node advertises what this machine has (slurmd -C: CPUs, sockets, cores, memory)
    local node hardware cpus memory
    node=$(hostname -s)
    hardware=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //; s/ UpTime=.*//')
    cpus=$(sed -E 's/.*CPUs=([0-9]+).*/\1/' <<<"$hardware")
    memory=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$hardware")
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$MUNGE"
    chmod 755 "$MUNGE"  # munged wants its socket's folder open to all, its key closed
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm.sh: a one-node cluster, no accounting, no cgroups.
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job that asks for no memory gets its CPUs' share, not the whole node
DefMemPerCPU=$((memory / cpus))
ReturnToService=2
# a cancelled job gets SIGTERM, then SIGKILL this many seconds later (30 on most clusters: short
# here, so a cancel test does not wait; srun adds its own 3 s)
KillWait=1
# ended jobs stay visible to squeue this long (the launcher reads their states there)
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$node NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    pid_of munged "$MUNGE/munged.pid" >/dev/null && return 0
    [[ -s $MUNGE/munge.key ]] || mungekey --create --keyfile="$MUNGE/munge.key"
    chmod 600 "$MUNGE/munge.key"
    rm -f "$SOCKET" "$SOCKET.lock"
    munged --force --socket="$SOCKET" --key-file="$MUNGE/munge.key" --pid-file="$MUNGE/munged.pid" \
        --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
    munge -n -S "$SOCKET" | unmunge -S "$SOCKET" >/dev/null || fail "munge does not answer: see $MUNGE/munged.log"
}

wait_until_idle() {
    local deadline=$((SECONDS + START_TIMEOUT_S)) resumed=0 state=""
    while ((SECONDS < deadline)); do
        state=$(node_state)
        case $state in
            idle | mixed | allocated | completing) return 0 ;;
            down | drained | draining | drain)
                # left down by an earlier stop or an unclean end: the node is this machine, bring it back
                if ((!resumed)); then
                    scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
                    resumed=1
                fi
                ;;
        esac
        sleep 0.5
    done
    fail "the node is '${state:-not seen}' after ${START_TIMEOUT_S} s: see $DIR/log/slurmctld.log and slurmd.log"
}

start() {
    if is_up; then
        say "up ($(node_state)), SLURM_CONF=$CONF"
        return 0
    fi
    local t0=$SECONDS
    install_packages
    write_config
    start_munge
    if ! pid_of slurmctld "$DIR/slurmctld.pid" >/dev/null; then
        slurmctld -f "$CONF" || fail "slurmctld did not start: see $DIR/log/slurmctld.log"
    fi
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until scontrol ping 2>/dev/null | grep -q UP; do
        ((SECONDS < deadline)) || fail "slurmctld does not answer: see $DIR/log/slurmctld.log"
        sleep 0.2
    done
    if ! pid_of slurmd "$DIR/slurmd.pid" >/dev/null; then
        slurmd -f "$CONF" || fail "slurmd did not start: see $DIR/log/slurmd.log"
    fi
    wait_until_idle
    say "up in $((SECONDS - t0)) s: node $(hostname -s), $(sinfo --noheader --Node --format='%c CPUs, %m MB'); SLURM_CONF=$CONF"
}

stop_daemons() {  # stop_daemons NAME PIDFILE ...: SIGTERM to all at once, SIGKILL to any left after STOP_TIMEOUT_S
    local pids=() files=() pid
    while (($#)); do
        if pid=$(pid_of "$1" "$2"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        files+=("$2")
        shift 2
    done
    local deadline=$((SECONDS + STOP_TIMEOUT_S))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                say "$(cat "/proc/$pid/comm" 2>/dev/null) ($pid) ignored SIGTERM for ${STOP_TIMEOUT_S} s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            sleep 0.1
        done
    done
    rm -f "${files[@]}"
}

step_daemons() {  # this cluster's slurmstepd processes (they run in its log folder, as slurmd does)
    local pid
    for pid in $(pgrep -x slurmstepd || true); do
        [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$DIR"* ]] && echo "$pid"
    done
}

stop() {
    if [[ -f $CONF ]] && pid_of slurmctld "$DIR/slurmctld.pid" >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
        # its jobs go first, every one (the cluster is this machine's own), so no job outlives the daemons
        local jobs
        jobs=$(squeue --noheader --format=%A 2>/dev/null | sort -u | tr '\n' ' ')
        [[ -n ${jobs// /} ]] && scancel --quiet $jobs 2>/dev/null
        local deadline=$((SECONDS + STOP_TIMEOUT_S))
        while [[ -n $(squeue --noheader 2>/dev/null) || -n $(step_daemons) ]] && ((SECONDS < deadline)); do
            sleep 0.2
        done
    fi
    local stepd
    for stepd in $(step_daemons); do  # a job step that would not end: it goes with its tasks
        say "a job step ($stepd) outlived its job by ${STOP_TIMEOUT_S} s: SIGKILL"
        pkill -KILL -P "$stepd" 2>/dev/null || true
        kill -KILL "$stepd" 2>/dev/null || true
    done
    stop_daemons slurmd "$DIR/slurmd.pid" slurmctld "$DIR/slurmctld.pid" munged "$MUNGE/munged.pid"
    rm -f "$SOCKET" "$SOCKET.lock"
    say "stopped"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) if is_up; then say "up ($(node_state)), SLURM_CONF=$CONF"; else say "not running"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
