#!/usr/bin/env bash
# oscar-edge GPU check: the CUDA decode / NMS / peak-refine kernels against the C++ CPU twin bit
# for bit (golden vectors and val_full outputs), their CUDA-event timing at 640x512, 20 AMP
# training iterations and `oscar-edge evaluate --device cuda` against the CPU. No TensorRT.
# See tests/gpu/README.md.
#
#   bash tests/gpu/device_check.sh            # report in $OUT, else gpu-check-report/
#
# Environment: OUT (report folder), PYTHON (the interpreter with CUDA torch; python3),
# NVCC (nvcc; from PATH or /usr/local/cuda/bin), CXX (g++), OSCAR_DATA (SIRST-V2 root; else
# ../shared/data/sirst-v2 or shared/data/sirst-v2), OSCAR_GPU_BUDGET_S (whole check, 470 s).
# Exit: 0 every step passed; 1 a step failed (the report says which); 2 no GPU / no Python.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GPU_DIR="$REPO/tests/gpu"
OUT_DIR="${OUT:-$REPO/gpu-check-report}"
BUILD="$REPO/build/gpu-check"
VENV="$BUILD/venv"
WHEELS="$GPU_DIR/wheels"
PYTHON_BASE="${PYTHON:-python3}"
BUDGET_S="${OSCAR_GPU_BUDGET_S:-470}"
START=$SECONDS

die() {
    echo "device_check: $*" >&2
    exit 2
}

# ---- preflight: one line and exit 2 when there is nothing to check on ------------------------
command -v nvidia-smi >/dev/null 2>&1 || die "no NVIDIA GPU: nvidia-smi not found"
if ! SMI="$(timeout 60 nvidia-smi --query-gpu=name,compute_cap,driver_version \
        --format=csv,noheader 2>&1)"; then
    die "no NVIDIA GPU: nvidia-smi failed: $(printf '%s\n' "$SMI" | grep -m1 . || echo 'no output')"
fi
GPU_LINE="$(printf '%s\n' "$SMI" | grep -m1 . || true)"
[ -n "$GPU_LINE" ] || die "no NVIDIA GPU: nvidia-smi lists none"
command -v "$PYTHON_BASE" >/dev/null 2>&1 || die "Python not found: $PYTHON_BASE (set PYTHON)"
GPU_NAME="$(printf '%s' "$GPU_LINE" | cut -d, -f1 | sed 's/^ *//;s/ *$//')"
CC="$(printf '%s' "$GPU_LINE" | cut -d, -f2 | tr -d ' .')"
if ! [[ "$CC" =~ ^[0-9]{2,3}$ ]]; then  # an old nvidia-smi: ask torch
    CC="$("$PYTHON_BASE" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability(0))' \
        2>/dev/null || true)"
fi
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
export NVCC

if [ -z "${OSCAR_DATA:-}" ]; then
    for d in "$REPO/../shared/data/sirst-v2" "$REPO/shared/data/sirst-v2"; do
        if [ -d "$d/splits" ]; then
            OSCAR_DATA="$(cd "$d" && pwd)"
            break
        fi
    done
fi
DATA="${OSCAR_DATA:-$REPO/../shared/data/sirst-v2}"
export OSCAR_DATA="$DATA"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export OSCAR_EDGE_NATIVE_LIB="$BUILD/liboscar_postprocess.so"
export PYTHONDONTWRITEBYTECODE=1

mkdir -p "$OUT_DIR/steps" "$OUT_DIR/logs" "$BUILD"
rm -f "$OUT_DIR"/steps/*.json "$OUT_DIR"/logs/*.log "$OUT_DIR"/report.json "$OUT_DIR"/report.md
echo "device_check: $GPU_NAME (sm_${CC:-?}), report in $OUT_DIR, budget ${BUDGET_S} s"

PY="$PYTHON_BASE"
STEP=0
FAILED=0

# run_step NAME LIMIT_S COMMAND...: the command under `timeout` (capped by what is left of the
# budget), output in logs/, its record (written by the command at $OSCAR_GPU_STEP_JSON, or
# made from its exit code) settled by gpu_report.py.
run_step() {
    local name=$1 limit=$2
    shift 2
    STEP=$((STEP + 1))
    local tag
    tag="$(printf '%02d-%s' "$STEP" "$name")"
    local log="$OUT_DIR/logs/$tag.log"
    export OSCAR_GPU_STEP_JSON="$OUT_DIR/steps/$tag.json"
    local left=$((BUDGET_S - (SECONDS - START) - 20))
    [ "$limit" -le "$left" ] || limit=$left
    local t0=$SECONDS rc
    if [ "$limit" -lt 10 ]; then
        echo "not run: the check's budget of $BUDGET_S s is spent" >"$log"
        rc=124
    else
        echo "== [$STEP] $name (at most $limit s)"
        timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
        rc=$?
    fi
    "$PY" "$GPU_DIR/gpu_report.py" step --out "$OUT_DIR" --index "$STEP" --name "$name" \
        --rc "$rc" --seconds "$((SECONDS - t0))" --log "$log" --timeout "$limit" \
        || echo "[fail] $name: could not record the step (exit $rc)"
    [ "$rc" -eq 0 ] || FAILED=1
}

# ---- steps that are shell functions (run by `bash -c` under timeout) -------------------------
setup_python() {
    set -e
    # The machine's Python as is when it already has everything: a venv made from a venv (an
    # image's /opt/.../.venv, say) sees the base interpreter's packages, not its parent's torch.
    local py="$VENV/bin/python"
    if "$PYTHON_BASE" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("numpy", "cv2", "tqdm", "torch")))'; then
        py="$PYTHON_BASE"
        echo "using $PYTHON_BASE ($(command -v "$PYTHON_BASE")) as is: numpy, OpenCV, tqdm and torch found"
    elif [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON_BASE" -m venv --system-site-packages "$VENV" \
            || { echo "python -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"; exit 1; }
        # where the base Python is itself a venv, its packages (torch) stay visible
        "$PYTHON_BASE" -c 'import site; print("\n".join(site.getsitepackages()))' \
            >"$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')/parent-python.pth"
    fi
    echo "$py" >"$BUILD/python"
    local missing
    missing="$("$py" - <<'EOF'
import importlib.util
need = {"numpy": "numpy", "cv2": "opencv-python-headless", "tqdm": "tqdm"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
EOF
)"
    if [ -n "$missing" ]; then
        echo "missing: $missing; installing from $WHEELS"
        ls "$WHEELS"/*.whl >/dev/null 2>&1 \
            || { echo "missing $missing and no wheels in $WHEELS: run tests/gpu/fetch_wheels.sh"; exit 1; }
        for pkg in $missing; do
            "$py" -m pip install --no-index --find-links "$WHEELS" "$pkg" \
                || "$py" -m pip install --no-index --find-links "$WHEELS" --no-deps "$pkg"
        done
    fi
    "$py" - <<'EOF'
import cv2, numpy, torch, tqdm
if not torch.cuda.is_available():
    raise SystemExit(f"torch {torch.__version__} sees no CUDA device (CPU build, or driver?)")
print(f"ok: numpy {numpy.__version__}, opencv {cv2.__version__}, tqdm {tqdm.__version__}, "
      f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}")
EOF
}

build_cpu_library() {
    set -e
    # setup.py's flags for oscar_edge/liboscar_postprocess.so (the C++ CPU twin)
    "${CXX:-g++}" -std=c++17 -O3 -Wall -Wextra -ffp-contract=off -fno-fast-math \
        -fvisibility=hidden -shared -fPIC "$REPO/cpp_plugins/cpu/oscar_postprocess_cpu.cpp" \
        -o "$OSCAR_EDGE_NATIVE_LIB"
    "$PY" -c "from oscar_edge.native import load_library; load_library(); print('ok: built and loaded $OSCAR_EDGE_NATIVE_LIB')"
}
export -f setup_python build_cpu_library
export REPO GPU_DIR BUILD VENV WHEELS PYTHON_BASE

# ---- the check ---------------------------------------------------------------------------------
rm -f "$BUILD/python"
run_step python_env 150 bash -c setup_python
if [ -s "$BUILD/python" ]; then
    PY="$(cat "$BUILD/python")"
fi
export PY
run_step cpu_library 90 bash -c build_cpu_library
run_step gpu_runner 240 "$PY" "$GPU_DIR/gpu_kernels.py" build --arch "sm_${CC:-unknown}" \
    --out "$BUILD/liboscar_gpu_runner.so"
run_step kernels 180 "$PY" "$GPU_DIR/gpu_kernels.py" check \
    --runner "$BUILD/liboscar_gpu_runner.so" --data "$DATA"
run_step timing 120 "$PY" "$GPU_DIR/gpu_kernels.py" time \
    --runner "$BUILD/liboscar_gpu_runner.so" --data "$DATA" --launches 1000
run_step train 150 "$PY" "$GPU_DIR/gpu_train_eval.py" train --device cuda --iters 20 \
    --data "$DATA"
run_step evaluate 330 "$PY" "$GPU_DIR/gpu_train_eval.py" evaluate --device cuda \
    --reference-device cpu --data "$DATA" --out "$OUT_DIR/evaluate" --timeout 140

"$PY" "$GPU_DIR/gpu_report.py" finish --out "$OUT_DIR" --seconds "$((SECONDS - START))"
REPORT_RC=$?
if [ "$FAILED" -ne 0 ] || [ "$REPORT_RC" -ne 0 ]; then
    echo "device_check: FAILED ($((SECONDS - START)) s); see $OUT_DIR/report.md"
    exit 1
fi
echo "device_check: all steps passed ($((SECONDS - START)) s); see $OUT_DIR/report.md"
exit 0
