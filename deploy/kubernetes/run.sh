#!/usr/bin/env bash
# Runs the test of echo-client-job.yaml on the cluster kubectl points at, and merges it:
# fills in START_AT (now + LEAD seconds: time for every pod to be scheduled, pull its image
# and open its connections), applies the Job, waits for it, saves each pod's report (its
# stdout) as OUT/shard-I.json and merges them into OUT/test.json with `echo-client merge`,
# which checks that they are the N shards of one test. A failed pod fails the run.
# Usage: deploy/kubernetes/run.sh [OUT] [LEAD_SECONDS] [TIMEOUT_SECONDS]
#        (defaults: echobench-k8s, 60, 3600)
set -euo pipefail
here=$(dirname "$0")
out=${1:-echobench-k8s}
lead=${2:-60}
timeout=${3:-3600}
manifest=$here/echo-client-job.yaml
shards=$(sed -n 's/^  completions: *//p' "$manifest")
mkdir -p "$out"
start_at=$(($(date +%s) + lead))
sed "s/@START_AT@/$start_at/" "$manifest" | kubectl apply -f -
deadline=$(($(date +%s) + lead + timeout))
while :; do
    status=$(kubectl get job echobench -o jsonpath='{.status.succeeded} {.status.failed}')
    read -r succeeded failed <<<"$status"
    if [[ ${failed:-0} -gt 0 ]]; then
        echo "a pod of job/echobench failed; its log:" >&2
        kubectl logs -l job-name=echobench --tail=20 >&2 || true
        exit 1
    fi
    [[ ${succeeded:-0} -eq $shards ]] && break
    if (($(date +%s) > deadline)); then
        echo "job/echobench did not complete within $((lead + timeout)) s" >&2
        exit 1
    fi
    sleep 5
done
for ((i = 0; i < shards; i++)); do
    pod=$(kubectl get pods -l "job-name=echobench,batch.kubernetes.io/job-completion-index=$i" \
        -o jsonpath='{.items[0].metadata.name}')
    kubectl logs "$pod" >"$out/shard-$((i + 1)).json"
done
echo-client merge "$out"/shard-*.json --json "$out/test.json"
