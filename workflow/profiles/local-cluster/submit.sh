#!/usr/bin/env bash
# Submit command of the local-cluster profile: start one job script as its own
# background process, detached from snakemake, and print its id (the pid).
# cluster-generic then waits for the job's "finished" or "failed" marker file.
# Each submission is logged in .snakemake/local-cluster.log (pid, job script).
set -euo pipefail
jobscript="$1"
nohup bash "$jobscript" > "${jobscript%.sh}.out" 2>&1 < /dev/null &
pid=$!
mkdir -p .snakemake
echo "$pid $jobscript" >> .snakemake/local-cluster.log
echo "$pid"
