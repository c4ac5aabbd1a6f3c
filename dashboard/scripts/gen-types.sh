#!/bin/sh
# Writes src/api-types.ts from the API's own OpenAPI document: the shapes are never retyped.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-../.venv/bin/python}"
"$PYTHON" -c '
import json
from ailedger.api.app import create_app
from ailedger.settings import Settings
print(json.dumps(create_app(Settings()).openapi(), indent=1, sort_keys=True))
' > openapi.json
npx openapi-typescript openapi.json -o src/api-types.ts
rm openapi.json
