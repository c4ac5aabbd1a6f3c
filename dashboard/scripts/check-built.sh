#!/bin/sh
# Rebuilds the dashboard and fails when the committed ailedger/api/dashboard/ differs from it.
set -eu
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm run build
if ! git diff --quiet --exit-code -- ../ailedger/api/dashboard \
   || [ -n "$(git ls-files --others --exclude-standard -- ../ailedger/api/dashboard)" ]; then
  git status --short -- ../ailedger/api/dashboard
  echo "ailedger/api/dashboard/ is not what dashboard/ builds: run \`make dashboard\` and commit it" >&2
  exit 1
fi
echo "ailedger/api/dashboard/ matches the sources"
