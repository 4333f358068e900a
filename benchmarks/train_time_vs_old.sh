#!/usr/bin/env bash
# Training wall time of older code beside the current code, on this machine, in one run: the same
# `edgeresnet train` command, each side in its own process, one after the other (machines differ between
# sessions, so a wall time means something only beside another measured in the same run).
#
# Usage: benchmarks/train_time_vs_old.sh [OLD_COMMIT]
#   OLD_COMMIT defaults to b57f66e, the 2026-11-22 code that took 194 s on that day's AVX-512 Zen 4 host.
# Writes benchmarks/results/train_time_vs_old.md. Needs the checkout's .venv (make install) and Fashion-MNIST.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
old=${1:-b57f66e}
python=${PYTHON:-$repo/.venv/bin/python}
work=$(mktemp -d)
git -C "$repo" worktree add -q --detach "$work/old" "$old"
trap 'git -C "$repo" worktree remove --force "$work/old"; rm -rf "$work"' EXIT
out=$repo/benchmarks/results/train_time_vs_old.md
{
  echo "# Training wall time: $old beside the current code ($(git -C "$repo" rev-parse --short HEAD))"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1), $(nproc) cores," \
       "flags $(grep -o -w 'avx[0-9a-z_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "Command: \`edgeresnet train --model resnet20 --data fashion-mnist --epochs 2\` (\`benchmarks/train_time_vs_old.sh $old\`)."
  echo
  echo "| code | wall time | images/s (epochs 1, 2) | test top-1 | load average before |"
  echo "|---|---|---|---|---|"
} > "$out.tmp"
for side in old current; do
  if [ "$side" = old ]; then path="$work/old"; label=$old; else path=""; label=current; fi
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$(date +%s.%N)
  (cd "$work" && PYTHONPATH=$path "$python" -m edgeresnet train --model resnet20 --data fashion-mnist --epochs 2 \
      --output "$work/$side" --no-progress > "$work/$side.log" 2>&1)
  end=$(date +%s.%N)
  rates=$(grep -o '[0-9]* img/s' "$work/$side.log" | cut -d' ' -f1 | paste -sd, -)
  top1=$(grep -o 'top-1 [0-9.]*%' "$work/$side.log" | tail -1 | cut -d' ' -f2)
  printf '| %s | %.0f s | %s | %s | %s |\n' "$label" "$(echo "$end - $start" | bc)" "$rates" "$top1" "$load" >> "$out.tmp"
done
mv "$out.tmp" "$out"
cat "$out"
