# The device checks of issue 30/31, in priority order, each bounded by what is left of DEADLINE seconds, as run
# on the H200 (DEADLINE=560): the CIFAR-10 batches rebuilt in /root/cifar from lossless WebP mosaics carried in
# two calls (checked by sha256 of the pixels), airbench94_muon's cache files (cifar10/train.pt, test.pt) written
# from them in /root/ab, its script (.gpu/s/airbench94_muon.py) the public one with 5 runs instead of 200.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 CIFAR10_DIR=${CIFAR10_DIR:-/root/cifar}
TINYEVAL=${TINYEVAL:-}; PY=${PY:-python3}; O=${OUT:-/tmp/out}; R=${R:-runs/gpu}; TINY=${TINY:-}
CAND="--set data.augment.corrupt=0.1 --set data.augment.augmix=0.5"
T0=$(date +%s); DEADLINE=${DEADLINE:-530}; LOG=$O/log.txt; mkdir -p $O $R
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
step() {  # step BUDGET CMD...: stdout+stderr to the log, bounded by the budget and the deadline
  local b=$1; shift; local l=$(left); [ $l -lt $b ] && b=$l; [ $b -le 5 ] && { echo "skip (no time): $*" >>$LOG; return 1; }
  echo "== $(date +%T) +$(( $(date +%s) - T0 ))s [$b s] $*" >>$LOG; timeout $b "$@" >>$LOG 2>&1; local rc=$?; echo "   rc=$rc +$(( $(date +%s) - T0 ))s" >>$LOG; return $rc; }
save() { tar -czf $O/results.tgz --exclude='*.pt' --exclude='*.ckpt' --exclude='events.*' $R 2>/dev/null; cp $LOG $O/log_copy.txt 2>/dev/null; }
evals() {  # evaluate every run of a bench folder on the corruption suite
  for d in $1/*/; do [ -f $d/summary.json ] || continue
    echo "== eval $d +$(( $(date +%s) - T0 ))s" >>$LOG
    local l=$(left); [ $l -le 10 ] && return
    timeout $(( l < 60 ? l : 60 )) $PY -m cifarlab evaluate $d --robustness-n 1000 --json $TINYEVAL > $1/evaluation_$(basename $d).json 2>>$LOG; echo "   rc=$?" >>$LOG
  done; }
{ nvidia-smi -L; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } >>$LOG 2>&1
step 40 $PY -m cifarlab info
step 150 $PY -m cifarlab bench advanced --seeds 5 --out $R/cand $CAND $TINY; save
evals $R/cand; save
step 150 $PY -m cifarlab bench advanced --seeds 5 --out $R/preset $TINY; save
evals $R/preset; save
for k in 0 1 2; do  # A B A B: the paired dev comparison, one seed of each at a time
  step 45 $PY -m cifarlab bench advanced --dev --seeds 1 --first-seed $k --robust-n 500 --out $R/dev --name preset $TINY
  step 45 $PY -m cifarlab bench advanced --dev --seeds 1 --first-seed $k --robust-n 500 --out $R/dev --name mix10_augmix50 $CAND $TINY; save
done
if [ -z "$TINY" ]; then (cd /root/ab && step 200 $PY $OLDPWD/.gpu/s/airbench94_muon.py); fi; save
step 60 $PY tools/real_files.py $R/cand/*/ --split test --n 1000 --out $R/real_files_cand.json; save
echo "done +$(( $(date +%s) - T0 ))s" >>$LOG; save
