#!/usr/bin/env bash
# The whole demo on a CPU: set up .venv, make a phantom data set, train the demo model, draw
# the attention figures and report the demo model's accuracy on the phantom test split.
# Steps whose results exist already are reused; delete data/ or output/ to redo them.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
config=configs/llrformer_demo.yaml
run_dir=output/MyKeypointDataset/llrformer/llrformer_demo
started=$(date +%s)
step() { printf '\n== [%3ds] %s\n' "$(($(date +%s) - started))" "$*"; }

step "1/5 Python environment (.venv)"
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
py=.venv/bin/python

step "2/5 phantom radiographs (data/)"
# make_phantoms.py writes data/phantoms.json last, so phantom files without it are what an
# interrupted run left, and they are made again. A data set of the user's own is reused.
if [[ -f data/phantoms.json ]] || { compgen -G "data/test/images/*" >/dev/null \
    && compgen -G "data/train/images/*" >/dev/null \
    && ! compgen -G "data/*/images/phantom_*" >/dev/null; }; then
    echo "reusing the data set in data/ ($(ls data/train/images | wc -l) training images)"
else
    $py tools/make_phantoms.py --out data --train 300 --val 30 --test 30 --seed 0
fi

step "3/5 training the demo model ($config)"
# final_state.pth is written when training ends, and checkpoint.pth after every epoch.
if [[ -f $run_dir/final_state.pth ]]; then
    echo "reusing the trained model $run_dir/model_best.pth"
elif [[ -f $run_dir/checkpoint.pth ]]; then
    echo "continuing the interrupted training in $run_dir"
    $py tools/train.py --cfg "$config" --resume
else
    $py tools/train.py --cfg "$config"
fi

step "4/5 attention figures (attention_vis/)"
(
    cd visualization
    ../$py attention_vis_keypoint_attention_layers.py
    ../$py attention_visualize.py
    ../$py plot_keypoint_token_similarity.py
)

step "5/5 accuracy on the phantom test split"
$py tools/evaluate.py --cfg "$config" --checkpoint "$run_dir/model_best.pth" --split test

step "done"
echo "figures:    $(pwd)/attention_vis/"
ls -1 attention_vis | sed 's/^/  /'
echo "evaluation: $(pwd)/$run_dir/eval_test/"
