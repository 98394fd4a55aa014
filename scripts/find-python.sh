#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or explain what to install and fail.
set -u
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
candidates+=(python3.14 python3.13 python3.12 python3)
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
    candidates+=("$(pyenv root)/versions/$v/bin/python3")
  done
fi
for root in "$HOME/.pyenv/versions" /usr/local/bin /usr/bin; do
  for p in "$root"/3.1[2-9]*/bin/python3 "$root"/python3.1[2-9]; do
    [ -x "$p" ] && candidates+=("$p")
  done
done
for c in "${candidates[@]}"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    echo "$p"
    exit 0
  fi
done
echo "cpm needs Python >= 3.12 with the venv module. Install one, e.g. 'apt-get install python3.12-venv'," >&2
echo "'pyenv install 3.13', or point PYTHON=/path/to/python3.12 at it, then run make again." >&2
exit 1
