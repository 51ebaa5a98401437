#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the fleet tests (tests/fleet/conftest.py).
#   slurm_cluster.sh install        apt-get install slurm-wlm and munge when missing (root)
#   slurm_cluster.sh start DIR      munged, slurmctld, slurmd with their files under DIR; waits
#                                   until the node is idle; prints the SLURM_CONF to use
#   slurm_cluster.sh stop DIR       stops the three daemons started with DIR (by their pid files)
# Everything lives under DIR (config, key, sockets, state, logs): /etc is left alone, and
# clients find the cluster through SLURM_CONF=DIR/slurm.conf. No cgroup plugins:
# proctrack/linuxproc and task/none work in containers and VMs alike.
# Ports: SLURM_TEST_PORT (slurmctld, default 26817) and the next one (slurmd).
set -euo pipefail

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "slurm-wlm/munge missing and not root: cannot apt-get install them"
  command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them"
  # Another job may hold the dpkg lock (a concurrent apt-get): wait for it rather than fail.
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends slurm-wlm munge >&2
}

write_config() {
  local dir=$1 node=$2 cpus=$3 port=$4 mem
  mem=$(awk '/^MemTotal:/ {print int($2 / 1024 / 2)}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=rifebench-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=5
MinJobAge=30
SlurmdTimeout=60
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  local dir=$1 node cpus port
  dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
  node=$(hostname -s)
  cpus=$(nproc --all)
  port=${SLURM_TEST_PORT:-26817}
  install_packages
  write_config "$dir" "$node" "$cpus" "$port"
  if [[ ! -s $dir/munge/munge.key ]]; then
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chmod 0400 "$dir/munge/munge.key"
  fi
  chmod 0700 "$dir/munge"
  # --force: munged refuses a key or socket folder it does not like when run as root in a temp dir.
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N "$node"
  local state=""
  for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$node" -o '%t' 2>/dev/null || true)
    if [[ $state == idle* ]]; then
      echo "$SLURM_CONF"
      return 0
    fi
    sleep 1
  done
  tail -n 5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  stop "$dir"
  die "node $node not idle after 60 s (state: ${state:-unknown}); logs in $dir/log"
}

stop_pidfile() {
  local file=$1 pid
  [[ -s $file ]] || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  local dir=$1
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
}

case "${1:-}" in
  install) install_packages ;;
  start) [[ $# -eq 2 ]] || die "usage: start DIR"; start "$2" ;;
  stop) [[ $# -eq 2 ]] || die "usage: stop DIR"; stop "$2" ;;
  *) die "usage: install | start DIR | stop DIR (got '${1:-}')" ;;
esac
