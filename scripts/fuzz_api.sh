#!/usr/bin/env bash
# API fuzzing (issue 15): schemathesis over every operation of the OpenAPI schema, against a live server on the
# demo database, once with a superuser token and once with an aggregator's token. Fails on any server error (5xx),
# response that violates the schema, or undocumented content type. Bounded: FUZZ_MAX_TIME seconds per principal
# (default 150), FUZZ_EXAMPLES examples per operation (default 8), a fixed seed (deterministic generation).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_fuzz bash scripts/fuzz_api.sh
#
# The database is erased (the quick demo fills it). Celery runs eagerly (no broker) for the seeding and the server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${FUZZ_PORT:-8765}"
MAX_TIME="${FUZZ_MAX_TIME:-150}"
EXAMPLES="${FUZZ_EXAMPLES:-8}"
OUT="${FUZZ_OUT:-var/fuzz}"
mkdir -p "$OUT"
unset CELERY_BROKER_URL
if [[ "${DATABASE_URL:-}" == postgres* ]]; then
  db="${DATABASE_URL##*/}"
  psql "${DATABASE_URL%/*}/postgres" -tc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
    || psql "${DATABASE_URL%/*}/postgres" -c "CREATE DATABASE $db" >/dev/null
fi

$PY manage.py migrate --noinput >/dev/null
$PY manage.py demo --quick --flush >"$OUT/demo.log" 2>&1 || { tail -30 "$OUT/demo.log"; exit 1; }
tokens=$($PY manage.py shell -c "
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from cpm.base import roles
from devices.models import Aggregator
User = get_user_model()
admin = User.objects.filter(is_superuser=True).order_by('pk').first()
agg_user, _ = User.objects.get_or_create(username='fuzz-aggregator')
agg_user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
aggregator = Aggregator.objects.order_by('pk').first()
Aggregator.objects.filter(pk=aggregator.pk).update(api_user=agg_user)
print(Token.objects.get_or_create(user=admin)[0].key, Token.objects.get_or_create(user=agg_user)[0].key)
")
read -r admin_token agg_token <<<"$(echo "$tokens" | tail -1)"

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
  echo "port $PORT is already in use: stop what listens there or set FUZZ_PORT" >&2; exit 2
fi
API_WRITE_RATE=1000000/minute $PY manage.py runserver --noreload --insecure "127.0.0.1:$PORT" >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/schema/" && break; sleep 1; done

status=0
for who in superuser aggregator; do
  token=$admin_token; [ "$who" = aggregator ] && token=$agg_token
  echo "== schemathesis as $who (max ${MAX_TIME}s, ${EXAMPLES} examples per operation)"
  .venv/bin/schemathesis run "http://127.0.0.1:$PORT/api/schema/" \
    -H "Authorization: Token $token" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples "$EXAMPLES" --max-time "$MAX_TIME" --seed 20261206 --generation-deterministic \
    --workers 2 --request-timeout 30 --no-color --report junit --report-junit-path "$OUT/$who.xml" \
    >"$OUT/$who.log" 2>&1 || status=1
  sed -n '/SUMMARY/,$p' "$OUT/$who.log"
done
if grep -q "Internal Server Error" "$OUT/server.log"; then
  echo "server errors in $OUT/server.log:"; grep -A3 "Internal Server Error" "$OUT/server.log" | head -40; status=1
fi
exit $status
