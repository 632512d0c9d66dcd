#!/bin/sh
# cluster.sh: a single-node Slurm cluster on this machine, for tests and for trying sweeps, started
# by hand (no systemd): munged, slurmctld and slurmd, all in DIR, accounting off.
#   sh scripts/cluster.sh up DIR     start it; prints `export SLURM_CONF=DIR/slurm.conf`
#   sh scripts/cluster.sh down DIR   stop every daemon it started, by the PIDs it recorded
# Needs root and the Debian packages slurm-wlm and munge (scripts/cluster.sh deps installs them).
# Ports 16817/16818 (SLURM_PORTS=a,b to change), so a real Slurm on the machine is not disturbed.
set -e
cmd=$1; dir=$2
die() { echo "cluster.sh: $*" >&2; exit 2; }
case "$cmd" in
deps)
  command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 && exit 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null || die "cannot install slurm-wlm munge (apt-get)"
  exit 0 ;;
up|down) [ -n "$dir" ] || die "usage: sh scripts/cluster.sh up|down DIR" ;;
*) die "usage: sh scripts/cluster.sh deps | up DIR | down DIR" ;;
esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ "$cmd" = down ]; then
  [ -f "$dir/pids" ] || { echo "cluster.sh: no daemons recorded in $dir/pids"; exit 0; }
  for pid in $(cat "$dir/pids"); do kill "$pid" 2>/dev/null || true; done
  for i in $(seq 50); do
    alive=0
    for pid in $(cat "$dir/pids"); do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for pid in $(cat "$dir/pids"); do kill -9 "$pid" 2>/dev/null || true; done
  echo "cluster.sh: stopped $(wc -w < "$dir/pids") daemons ($(tr '\n' ' ' < "$dir/pids"))"
  rm -f "$dir/pids"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (the daemons run as root here)"
command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 ||
  die "slurm-wlm and munge are not installed (sh scripts/cluster.sh deps)"
ports=${SLURM_PORTS:-16817,16818}
cport=${ports%,*}; dport=${ports#*,}
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
: > "$dir/pids"
# munge: a key of its own, its socket in DIR (slurm.conf's AuthInfo points there)
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 700 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed"
for i in $(seq 50); do [ -s "$dir/munge/munged.pid" ] && break; sleep 0.1; done
cat "$dir/munge/munged.pid" >> "$dir/pids"
cat > "$dir/slurm.conf" <<CONF
ClusterName=bertlab
SlurmctldHost=$host
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
for i in $(seq 100); do [ -s "$dir/slurmctld.pid" ] && [ -s "$dir/slurmd.pid" ] && break; sleep 0.1; done
cat "$dir/slurmctld.pid" "$dir/slurmd.pid" >> "$dir/pids" 2>/dev/null || die "a daemon did not start (see $dir/*.log)"
for i in $(seq 100); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && { echo "export SLURM_CONF=$dir/slurm.conf"; exit 0; }
  sleep 0.2
done
die "the node did not become idle in 20 s (see $dir/slurmctld.log, $dir/slurmd.log); sh scripts/cluster.sh down $dir stops it"
