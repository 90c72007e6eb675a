#!/usr/bin/env bash
# Regenerates 0001_initial_schema.py from the models. Only while nothing has been released:
# once a database exists outside tests, schema changes are new revisions (alembic revision --autogenerate).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f services/db/migrations/versions/0001_initial_schema.py
MARKETPLACE_DATABASE_URL="sqlite:///$tmp/autogen.db" .venv/bin/alembic revision --autogenerate -m "initial schema" --rev-id 0001 >/dev/null
f=services/db/migrations/versions/0001_initial_schema.py
sed -i 's/^from sqlalchemy.dialects import postgresql$/from sqlalchemy import Text\nfrom sqlalchemy.dialects import postgresql/' "$f"
sed -i '/^Create Date:/d' "$f"
.venv/bin/ruff format -q "$f"
.venv/bin/ruff check -q --fix "$f" || true
rm -rf "$tmp"
echo "regenerated $f"
