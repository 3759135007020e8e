#!/usr/bin/env bash
# latency at full size (this CPU) of every candidate of both quick CIFAR-10 searches, in one session
set -euo pipefail
cd "$(dirname "$0")/../../.." && . .venv/bin/activate   # the repository root
out=runs/candidates-latency; rm -rf $out; mkdir -p $out
derive() { effscale derive --phi 1 --alpha $2 --beta $3 --gamma $4 --num-classes 10 --counter torch --out $out/$1 >/dev/null; cp $out/$1/b1.yaml $out/$1.yaml; }
effscale derive --phi 0 --num-classes 10 --counter torch --out $out/base >/dev/null; cp $out/base/b0.yaml $out/base.yaml
derive flops-a1.00_b1.11_g1.300 1.0 1.111 1.3
derive flops-a1.00_b1.23_g1.150 1.0 1.229 1.15
derive flops-a1.00_b1.45_g1.000 1.0 1.45 1.0
derive flops-a1.40_b1.11_g1.000 1.4 1.107147216796875 1.0
derive flops-a1.80_b1.00_g1.000 1.8 1.0 1.0
derive latency-a1.80_b1.43_g1.000 1.8 1.43438720703125 1.0
derive latency-a1.40_b1.12_g1.150 1.4 1.122 1.15
derive paper-b1 1.2 1.1 1.15
cd $out && for run in 1 2; do echo "== run $run"; effscale cost base.yaml flops-*.yaml latency-*.yaml paper-b1.yaml --no-memory --no-cache 2>&1; done
