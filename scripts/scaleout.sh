#!/usr/bin/env bash
# The scale-out profile on one machine: PostgreSQL for the Dagster instance, Redis as the Celery broker
# and result backend, and N Celery workers that run the steps. Loopback only, data under one directory.
#
#   scripts/scaleout.sh start [DIR] [WORKERS]   bring it up (default DIR=.scaleout, WORKERS=2)
#   scripts/scaleout.sh stop  [DIR]             stop everything and delete DIR's data
#   source DIR/env.sh                           DAGSTER_HOME, DEPSIM_EXECUTOR=celery and the URLs for
#                                               `dagster dev`, `depsim run`, `dagster asset materialize`
#
# Needs Debian's postgresql and redis-server (apt-get install postgresql redis-server) and
# `pip install -e '.[scaleout]'`. Workers inherit this shell's environment: export DEPSIM_CONFIG and
# DEPSIM_PRIVACY_KEY first, as for the runs themselves.
set -euo pipefail
cmd=${1:-}
dir=$(realpath -m "${2:-.scaleout}")
workers=${3:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)

die() { echo "scaleout: $*" >&2; exit 1; }
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_bin() {
  local b; b=$(command -v "$1" 2>/dev/null || ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1)
  [ -n "$b" ] || die "PostgreSQL's $1 not found: apt-get install postgresql"; echo "$b"
}
# initdb and postgres refuse to run as root: run them as the postgres user Debian's package creates.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start() {
  command -v redis-server >/dev/null || die "redis-server not found: apt-get install redis-server"
  "$py" -c "import dagster_celery, dagster_postgres, redis" 2>/dev/null || die "pip install -e '.[scaleout]' first"
  [ -e "$dir/env.sh" ] && die "$dir is already up (scripts/scaleout.sh stop $dir first)"
  mkdir -p "$dir"/{redis,logs,dagster_home,celery}
  # As root the server runs as `postgres`, which may not reach DIR (a private temp dir): its data goes
  # to a directory of its own, recorded in DIR/pg.path.
  local pg="$dir/pg"
  if [ "$(id -u)" = 0 ]; then pg=$(mktemp -d -t depsim-pg-XXXXXX); chown postgres "$pg"; else mkdir -p "$pg"; fi
  echo "$pg" >"$dir/pg.path"
  local pg_port redis_port; pg_port=$(free_port); redis_port=$(free_port)

  as_pg "$(pg_bin initdb)" -D "$pg/data" -U depsim --auth=trust -E UTF8 >"$dir/logs/initdb.log"
  as_pg "$(pg_bin pg_ctl)" -D "$pg/data" -l "$pg/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg -c max_connections=200" start >/dev/null
  "$(pg_bin createdb)" -h 127.0.0.1 -p "$pg_port" -U depsim dagster

  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir/redis" --daemonize yes \
    --pidfile "$dir/redis/redis.pid" --logfile "$dir/logs/redis.log" --save "" --appendonly no
  cp "$repo/deploy/scaleout/dagster.yaml" "$dir/dagster_home/dagster.yaml"

  cat >"$dir/env.sh" <<ENV
export DAGSTER_HOME=$dir/dagster_home
export DEPSIM_EXECUTOR=celery
export DEPSIM_PG_URL=postgresql+psycopg2://depsim@127.0.0.1:$pg_port/dagster
export DEPSIM_CELERY_BROKER=redis://127.0.0.1:$redis_port/0
export DEPSIM_CELERY_BACKEND=redis://127.0.0.1:$redis_port/1
ENV
  # shellcheck disable=SC1091
  source "$dir/env.sh"
  # The model-calling pool's limit set once here: left to the default, concurrent runs each try to create
  # its row and all but one fail on PostgreSQL's unique constraint.
  DAGSTER_HOME=$dir/dagster_home "$py" -m dagster instance concurrency set llm "${DEPSIM_LLM_POOL:-8}" >/dev/null
  # dagster_celery's app reads its settings from a `dagster_celery_config` module on the path.
  printf 'broker_url = "%s"\nresult_backend = "%s"\nworker_prefetch_multiplier = 1\n' \
    "$DEPSIM_CELERY_BROKER" "$DEPSIM_CELERY_BACKEND" >"$dir/celery/dagster_celery_config.py"
  for i in $(seq 1 "$workers"); do
    PYTHONPATH="$dir/celery${PYTHONPATH:+:$PYTHONPATH}" "$py" -m celery -A dagster_celery.app worker -Q dagster \
      -n "worker$i@%h" --concurrency 1 --detach --pidfile "$dir/celery/worker$i.pid" \
      --logfile "$dir/logs/worker$i.log" --loglevel INFO
  done
  # Up when every worker answers a ping.
  for _ in $(seq 1 60); do
    n=$(PYTHONPATH="$dir/celery" "$py" -m celery -A dagster_celery.app inspect ping -t 2 2>/dev/null | grep -c "pong" || true)
    [ "$n" -ge "$workers" ] && { echo "scaleout: up in $dir ($workers workers); source $dir/env.sh"; return; }
    sleep 1
  done
  die "workers did not answer; see $dir/logs/"
}

stop() {
  [ -d "$dir" ] || return 0
  for pid in "$dir"/celery/worker*.pid; do
    [ -e "$pid" ] && kill -TERM "$(cat "$pid")" 2>/dev/null || true
  done
  [ -e "$dir/redis/redis.pid" ] && kill -TERM "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
  local pg; pg=$(cat "$dir/pg.path" 2>/dev/null || true)
  [ -n "$pg" ] && [ -e "$pg/data/postmaster.pid" ] && as_pg "$(pg_bin pg_ctl)" -D "$pg/data" -m fast -w stop >/dev/null || true
  for pid in "$dir"/celery/worker*.pid; do  # a worker finishes its task first: wait for it
    for _ in $(seq 1 30); do [ -e "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null && sleep 1 || break; done
  done
  rm -rf "$dir" ${pg:+"$pg"}
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) die "usage: scripts/scaleout.sh start|stop [DIR] [WORKERS]" ;;
esac
