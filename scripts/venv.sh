#!/usr/bin/env bash
# Creates .venv with the API conformance suite's pinned Python packages
# (boto3 and pytest); reinstalls only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tests/api/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
