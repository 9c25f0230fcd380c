#!/usr/bin/env bash
# Download the wheels that tests/gpu/device_check.sh installs (pip --no-index) where the GPU
# machine lacks a package, into tests/gpu/wheels/ (git-ignored). Run it on a machine with
# PyPI access, then carry tests/gpu/wheels/ with the working tree. See tests/gpu/README.md.
#
#   bash tests/gpu/fetch_wheels.sh                       # opencv-python-headless + tqdm
#   bash tests/gpu/fetch_wheels.sh --python 3.12 numpy   # also numpy, for CPython 3.12 only
#
# The default set covers CPython 3.10-3.12 on manylinux x86-64 with two files (OpenCV's wheel is
# abi3, tqdm is pure Python; about 57 MB). Packages named on the command line are fetched for
# every --python version (default "3.10 3.11 3.12"); a numpy wheel is about 17 MB per version,
# so name only the target's version when the carried files must stay under 60 MB.
set -euo pipefail

DEST="${WHEELS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/wheels}"
VERSIONS="3.10 3.11 3.12"
PIP="${PIP:-python3 -m pip}"
BASE=("opencv-python-headless>=4.8,<6" "tqdm>=4.60,<5")  # as setup.py's requirements
EXTRA=()
LIMIT_MB=60

while [ $# -gt 0 ]; do
    case "$1" in
        --python)
            [ $# -ge 2 ] || { echo "fetch_wheels: --python needs versions, e.g. \"3.11 3.12\"" >&2; exit 2; }
            VERSIONS="$2"
            shift 2
            ;;
        -h | --help)
            sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "fetch_wheels: unknown option $1 (see --help)" >&2
            exit 2
            ;;
        *)
            case "$1" in
                numpy) EXTRA+=("numpy>=1.24,<3") ;;
                *) EXTRA+=("$1") ;;
            esac
            shift
            ;;
    esac
done

for v in $VERSIONS; do
    [[ "$v" =~ ^3\.[0-9]+$ ]] || { echo "fetch_wheels: not a CPython version: $v" >&2; exit 2; }
done

mkdir -p "$DEST"
for v in $VERSIONS; do
    echo "== CPython $v"
    # --no-deps: only what is named (device_check.sh installs only what is missing; numpy is
    # normally there beside torch).
    $PIP download --dest "$DEST" --no-deps --only-binary=:all: --implementation cp \
        --python-version "$v" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 "${BASE[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
done

total_kb="$(du -sk "$DEST" | cut -f1)"
total_mb=$(((total_kb + 1023) / 1024))
ls -1 "$DEST"
echo "fetch_wheels: $(ls -1 "$DEST"/*.whl | wc -l) wheels, ${total_mb} MB in $DEST"
if [ "$total_mb" -gt "$LIMIT_MB" ]; then
    echo "fetch_wheels: warning: more than $LIMIT_MB MB; keep only the target's Python version" >&2
fi
