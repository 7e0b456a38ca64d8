#!/usr/bin/env bash
# Live check of the NVIDIA provider's inputs on a real GPU machine (run through the device tool).
# Captures exactly what @sharedllm/provider-nvidia runs, plus nvidia-smi's own views to cross-check,
# and the CPU cost of one spawn per sample versus the long-running loop mode at the 3 s cadence.
set -u
OUT=${OUT:-/tmp/nvidia-live}; mkdir -p "$OUT"
Q='--query-gpu=index,uuid,name,memory.total,memory.used,memory.free'
nvidia-smi "$Q" --format=csv,nounits > "$OUT/query.csv" 2>&1; echo "query rc=$?" > "$OUT/cost.txt"
timeout 2 nvidia-smi "$Q" --format=csv,nounits -lms 500 > "$OUT/loop.csv" 2>&1
nvidia-smi -q -d MEMORY > "$OUT/q-memory.txt" 2>&1
nvidia-smi > "$OUT/table.txt" 2>&1
{
  nvidia-smi --version
  echo "clk_tck=$(getconf CLK_TCK) nproc=$(nproc)"
  TIMEFORMAT='spawn x20: %R s real, %U s user, %S s sys'
  time (for i in $(seq 20); do nvidia-smi "$Q" --format=csv,nounits > /dev/null; done)
  nvidia-smi "$Q" --format=csv,nounits -lms 3000 > /dev/null 2>&1 &
  P=$!; sleep 30
  echo "loop 3000 ms for 30 s: /proc/$P/stat fields 14-17 (utime stime cutime cstime, ticks): $(cut -d' ' -f14-17 /proc/$P/stat)"
  kill $P
} >> "$OUT/cost.txt" 2>&1
ls -la "$OUT"; cat "$OUT/query.csv" "$OUT/cost.txt"
