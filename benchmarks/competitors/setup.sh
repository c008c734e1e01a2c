#!/usr/bin/env bash
# Create the competitors' virtual environments that the benchmarks in benchmarks/ measure loopml against.
#
# Usage: bash benchmarks/competitors/setup.sh [DIR]      (DIR defaults to .anchors/ at the repository root,
#                                                        which .gitignore leaves out)
#   PYTHON=python3.11 bash benchmarks/competitors/setup.sh   to choose the interpreter the venvs are made from
#
# One venv per file in benchmarks/competitors/requirements/ (mlflow, evidently, dvc, loadgen, mlserver), each installed
# from PyPI with the exact versions pinned there. DIR/<name>/installed.txt is `pip freeze` after the install: it
# records every version measured and marks the venv finished. A finished venv whose requirements file has not
# changed since is skipped; one whose pins changed, or whose install was interrupted, is installed again.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${1:-$ROOT/.anchors}
PYTHON=${PYTHON:-python3}
export DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 PIP_DISABLE_PIP_VERSION_CHECK=1

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac

# The module each venv must import once installed: a venv that installs but cannot import is not finished.
declare -A IMPORTS=(
  [mlflow]="mlflow, sklearn, psycopg, xgboost"
  [evidently]="evidently, pandas, pyarrow"
  [dvc]="dvc.repo"
  [loadgen]="aiohttp, grpc"
  [mlserver]="mlserver, mlserver_sklearn, mlserver_xgboost, mlserver_lightgbm"
)

build() {  # NAME: create or refresh DIR/NAME from requirements/NAME.txt
  local name=$1 venv=$DIR/$1 reqs=$HERE/requirements/$1.txt
  if [ -f "$venv/installed.txt" ] && cmp -s "$reqs" "$venv/requirements.txt"; then
    echo "$venv: up to date, skipped"
    return
  fi
  rm -f "$venv/installed.txt"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  echo "$venv: installing $(grep -v '^#' "$reqs" | paste -sd' ')" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$reqs"
  "$venv/bin/python" -c "import ${IMPORTS[$name]}"
  cp "$reqs" "$venv/requirements.txt"
  "$venv/bin/python" -m pip freeze > "$venv/installed.txt"
  echo "$venv: ready"
}

mkdir -p "$DIR"
for reqs in "$HERE"/requirements/*.txt; do
  build "$(basename "$reqs" .txt)"
done
