#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the Slurm tests and for trying --launcher slurm.
#
#   scripts/slurm_cluster.sh start    # install slurm-wlm + munge if missing, start munged, slurmctld, slurmd
#   export SLURM_CONF=/tmp/ablate-slurm/slurm.conf   # printed by start; sinfo/sbatch/squeue read it
#   scripts/slurm_cluster.sh status   # daemons (by recorded pid) and sinfo
#   scripts/slurm_cluster.sh stop     # kill exactly the daemons start started, by their recorded pids
#
# Everything (slurm.conf, munge key and socket, state/spool dirs, logs, pid files) lives in
# $ABLATE_SLURM_DIR (default /tmp/ablate-slurm); nothing under /etc is changed, so the cluster is
# only visible to commands that export SLURM_CONF. Needs root (SlurmUser=root; apt-get) on Debian
# or Ubuntu. The node has all CPUs of this machine (nproc) and is one partition, "debug".
set -euo pipefail

DIR=${ABLATE_SLURM_DIR:-/tmp/ablate-slurm}
CTLD_PORT=${ABLATE_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${ABLATE_SLURMD_PORT:-6818}
NODE=$(hostname -s)
DAEMONS=(slurmd slurmctld munged)  # stop order: the reverse of start

say() { echo "[slurm_cluster] $*" >&2; }

alive() {  # alive NAME: the daemon whose pid we recorded is still running
    local f="$DIR/$1.pid"
    [[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        say "slurm-wlm and munge are not installed, and this is not root on a Debian/Ubuntu system."
        say "Install them (e.g. apt-get install -y slurm-wlm munge), then rerun."
        exit 1
    fi
    say "installing slurm-wlm and munge (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    # slurmd drains a node that has less memory than configured: stay below what it will measure.
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR"/{state,spool,log,munge}
    chmod 700 "$DIR/munge"
    cat >"$DIR/slurm.conf" <<EOF
# Written by scripts/slurm_cluster.sh: one node, this host, for tests.
ClusterName=ablate
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
ReturnToService=2
# Jobs may be requeued (preemption, time limit: the harness requeues itself on SIGUSR1).
JobRequeue=1
# Seconds between SIGTERM and SIGKILL when a job is cancelled or requeued.
KillWait=10
# Finished jobs stay visible to squeue for this long (ablate.py --status reads it).
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ ! -s $DIR/munge/munge.key ]]; then
        head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
        chmod 400 "$DIR/munge/munge.key"
    fi
}

start() {
    if alive slurmctld && alive slurmd && alive munged; then
        say "already running (pids in $DIR)"
        echo "export SLURM_CONF=$DIR/slurm.conf"
        return
    fi
    stop quiet
    install_packages
    write_config
    export SLURM_CONF=$DIR/slurm.conf
    munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
    # -i: ignore state from an earlier run (stale jobs); slurmd registers this host's CPUs.
    slurmctld -i -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 60); do
        if [[ $(sinfo -h -n "$NODE" -o %t 2>/dev/null) == idle ]]; then
            say "node $NODE idle: $(sinfo -h -o '%P %D %c CPUs %t')"
            echo "export SLURM_CONF=$SLURM_CONF"
            return
        fi
        sleep 1
    done
    say "the node did not come up idle within 60 s; logs in $DIR/log:"
    tail -n 20 "$DIR"/log/*.log >&2 || true
    stop
    exit 1
}

stop() {
    local name pid
    for name in "${DAEMONS[@]}"; do
        if alive "$name"; then
            pid=$(cat "$DIR/$name.pid")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            [[ ${1:-} == quiet ]] || say "stopped $name (pid $pid)"
        fi
        rm -f "$DIR/$name.pid"
    done
}

status() {
    local name rc=0
    for name in munged slurmctld slurmd; do
        if alive "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; rc=1; fi
    done
    if [[ $rc == 0 ]]; then SLURM_CONF=$DIR/slurm.conf sinfo; fi
    return $rc
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (state in \$ABLATE_SLURM_DIR, default /tmp/ablate-slurm)" >&2; exit 2 ;;
esac
