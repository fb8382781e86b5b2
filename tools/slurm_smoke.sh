#!/usr/bin/env bash
# The smoke workflow on a real one-node SLURM cluster: installs munge, slurmctld and slurmd with apt-get when they are
# missing, writes a slurm.conf for this host (tools/slurm_smoke.conf.in), starts munged, slurmctld and slurmd from a
# temporary folder (the config at /etc/slurm/slurm.conf, removed at the end), waits for the node to be idle, runs
#   snakemake --profile workflow/profiles/slurm --configfile workflow/config/smoke.yaml
# in a temporary copy of the workflow, checks Table 1, and stops every daemon it started, also on failure or Ctrl-C.
# Usage (as root, on Debian or Ubuntu): bash tools/slurm_smoke.sh
# Environment: TEDSNET_SLURM_KEEP=1 keeps the temporary folder (logs, results) and prints its path.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CTLD_PORT=16817  # away from SLURM's own ports, so that a cluster already on this host is left alone
SLURMD_PORT=16818
PYTHON="${PYTHON:-python3}"

say() { echo "slurm_smoke: $*"; }
fail() {
  echo "slurm_smoke: $*" >&2
  exit 1
}

install_slurm() {
  local missing=""
  for tool in munged mungekey slurmctld slurmd sbatch squeue sinfo; do
    command -v "$tool" >/dev/null || missing="$missing $tool"
  done
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || fail "missing:$missing; this script installs them with apt-get (Debian or Ubuntu): install munge, slurmctld, slurmd and slurm-client yourself"
  say "installing munge, slurmctld, slurmd, slurm-client (missing:$missing)"
  # Keep apt from starting the system's own munge and SLURM services: this script runs private ones.
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
  fi
  local status=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        munge slurmctld slurmd slurm-client >/dev/null
  } || status=$?
  if [ -n "$added_policy" ]; then rm -f "$policy"; fi
  [ "$status" -eq 0 ] || fail "apt-get could not install munge, slurmctld, slurmd and slurm-client (exit $status)"
}

write_config() {
  # The node as slurmd itself sees it: CPU count and memory of this host.
  local probe cpus memory node
  probe="$(slurmd -C | head -1)"
  cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$probe")"
  memory="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$probe")"
  node="$(hostname -s)"
  if [ -z "$cpus" ] || [ -z "$memory" ]; then
    fail "could not read CPUs and RealMemory from 'slurmd -C': $probe"
  fi
  say "node $node: $cpus CPUs, $memory MB"
  sed -e "s|@NODE@|$node|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY_MB@|$memory|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
    -e "s|@STATE@|$WORK/state|g" -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" \
    "$REPO/tools/slurm_smoke.conf.in" >"$SLURM_CONF"
}

start_daemons() {
  mkdir -m 700 "$WORK/munge"
  mkdir -m 755 "$WORK/run"  # munged requires its socket's folder to be reachable by every user
  mkdir -p "$WORK/state/ctld" "$WORK/state/slurmd"
  mungekey --create --keyfile="$WORK/munge/munge.key"
  munged --socket="$MUNGE_SOCKET" --key-file="$WORK/munge/munge.key" --log-file="$WORK/munge/munged.log" \
    --pid-file="$WORK/munge/munged.pid" --seed-file="$WORK/munge/munged.seed"
  slurmctld
  slurmd
  local state=""
  for _ in $(seq 60); do
    state="$(sinfo --noheader --Node --format=%t 2>/dev/null | head -1)"
    [ "$state" = "idle" ] && break
    sleep 1
  done
  [ "$state" = "idle" ] || fail "the node did not become idle (state: '${state:-none}'); see the logs below"
  say "cluster up: $(sinfo --noheader --format='partition %P, %D node, %t')"
}

stop_pid_file() {
  [ -s "$1" ] && stop_pid "$(cat "$1")"
  return 0
}

alive() {
  # A process that has ended but is not yet reaped (state Z) counts as gone.
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

stop_pid() {
  local pid="$1"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 60); do
    alive "$pid" || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${SNAKEMAKE_PID:-}" ]; then
    # Snakemake cancels its SLURM jobs on SIGTERM.
    stop_pid "$SNAKEMAKE_PID"
  fi
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    if [ -s "$WORK/state/slurmctld.pid" ]; then
      scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
      for _ in $(seq 20); do
        [ -z "$(squeue --noheader 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
    stop_pid_file "$WORK/state/slurmd.pid"
    stop_pid_file "$WORK/state/slurmctld.pid"
    stop_pid_file "$WORK/munge/munged.pid"
    rm -f "$SLURM_CONF"
    say "daemons stopped"
    if [ "$rc" -ne 0 ]; then
      for log in "$WORK/state/slurmctld.log" "$WORK/state/slurmd.log" "$WORK/munge/munged.log"; do
        [ -f "$log" ] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
      done
    fi
    if [ "${TEDSNET_SLURM_KEEP:-0}" = 1 ]; then
      say "kept $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}

run_smoke() {
  local wf="$WORK/workflow-copy" table="results/smoke/table1.csv" rows
  mkdir "$wf"
  cp "$REPO/Snakefile" "$wf/"
  for name in workflow tedsnet baselines envs; do
    [ -e "$REPO/$name" ] && cp -r "$REPO/$name" "$wf/"
  done
  find "$wf" -name __pycache__ -prune -exec rm -rf {} +
  say "running the smoke workflow through workflow/profiles/slurm in $wf"
  # Poll the cluster more often than the profile's default, as the smoke jobs last seconds, not hours. Snakemake runs
  # in the background so that a signal reaches the cleanup at once rather than when Snakemake ends.
  (cd "$wf" && exec "$PYTHON" -m snakemake --profile workflow/profiles/slurm --configfile workflow/config/smoke.yaml \
    --slurm-init-seconds-before-status-checks 5) >"$WORK/snakemake.log" 2>&1 &
  SNAKEMAKE_PID=$!
  if ! wait "$SNAKEMAKE_PID"; then
    SNAKEMAKE_PID=""
    tail -n 60 "$WORK/snakemake.log" >&2
    fail "the smoke workflow failed under SLURM (the end of Snakemake's log above)"
  fi
  SNAKEMAKE_PID=""
  grep -E "steps \(100%\) done" "$WORK/snakemake.log" | tail -1 | sed 's/^/slurm_smoke: /'
  [ -s "$wf/$table" ] || fail "the workflow ended but wrote no $table"
  rows="$(($(wc -l <"$wf/$table") - 1))"
  [ "$rows" -ge 11 ] || fail "$table has $rows rows, expected 11 (one per experiment of smoke.yaml)"
  say "Table 1 has its $rows rows; SLURM ran $(grep -c 'has been submitted with SLURM jobid' "$WORK/snakemake.log") jobs"
}

[ "$(id -u)" -eq 0 ] || fail "needs root (it installs packages and runs munged, slurmctld and slurmd as root): sudo bash $0"
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null ||
  fail "the SLURM executor plugin is missing: pip install snakemake-executor-plugin-slurm==2.8.0 (in envs/requirements.txt)"
START=$SECONDS
SNAKEMAKE_PID=""
install_slurm
# The default path: the executor's job step drops SLURM_* variables (SLURM_CONF too) before its srun.
SLURM_CONF=/etc/slurm/slurm.conf
if [ -e "$SLURM_CONF" ] && ! grep -q "tools/slurm_smoke.sh" "$SLURM_CONF"; then
  fail "$SLURM_CONF exists: this host has a SLURM of its own; run the profile there instead of this script"
fi
WORK="$(mktemp -d /tmp/tedsnet-slurm.XXXXXX)"
chmod 755 "$WORK"
MUNGE_SOCKET="$WORK/run/munge.socket"
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$(dirname "$SLURM_CONF")"
write_config
start_daemons
run_smoke
say "passed in $((SECONDS - START)) s"
