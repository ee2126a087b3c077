#!/usr/bin/env bash
# The real local stack for fleetstream, as local processes on 127.0.0.1 (no Docker).
#
#   deploy/local/stack.sh up [SERVICE...]      install (once, cached) and start; a running service is left alone
#   deploy/local/stack.sh down [SERVICE...]    stop what `up` started
#   deploy/local/stack.sh status               each service, its port, and whether it answers
#   deploy/local/stack.sh env                  the FLEET_* variables that point clients at this stack
#
# SERVICE is any of: kafka registry postgres redis influxdb mosquitto (default: all), or influxdb2:
# InfluxDB 1.12 with /api/v2/write for the sink's v2 tests, built from Go modules by install-influxd.sh
# (once, ~15-20 min, cached in ~/.cache/fleetstream); only started when named (`make test` does), and
# stopped and reported with the others.
# Data, logs and pid files live under .local/ (git-ignored). Ports come from the environment:
#   FLEET_KAFKA_PORT=19092 FLEET_KAFKA_CONTROLLER_PORT=19093 FLEET_REGISTRY_PORT=18081
#   FLEET_POSTGRES_PORT=15432 FLEET_REDIS_PORT=16379 FLEET_INFLUX_PORT=18086 FLEET_MQTT_PORT=11883
#   FLEET_INFLUXDB2_PORT=18087 FLEET_INFLUXDB2_RPC_PORT=18089
# Non-standard defaults keep the stack clear of services a developer may already run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
LOCAL="${FLEET_LOCAL_DIR:-$ROOT/.local}"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"

KAFKA_VERSION="4.1.1"
APICURIO_VERSION="3.0.9"   # newest apicurio-registry-app '-all' archive published on Maven Central
PG_BIN="${FLEET_PG_BIN:-/usr/lib/postgresql/15/bin}"

KAFKA_PORT="${FLEET_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${FLEET_KAFKA_CONTROLLER_PORT:-19093}"
REGISTRY_PORT="${FLEET_REGISTRY_PORT:-18081}"
POSTGRES_PORT="${FLEET_POSTGRES_PORT:-15432}"
REDIS_PORT="${FLEET_REDIS_PORT:-16379}"
INFLUX_PORT="${FLEET_INFLUX_PORT:-18086}"
INFLUX_RPC_PORT="${FLEET_INFLUX_RPC_PORT:-18088}"
MQTT_PORT="${FLEET_MQTT_PORT:-11883}"
INFLUX2_PORT="${FLEET_INFLUXDB2_PORT:-18087}"
INFLUX2_RPC_PORT="${FLEET_INFLUXDB2_RPC_PORT:-18089}"

ALL_SERVICES=(kafka registry postgres redis influxdb mosquitto)
OPTIONAL_SERVICES=(influxdb2)  # started only when named; `down` and `status` include them

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

port_of() {
  case "$1" in
    kafka) echo "$KAFKA_PORT" ;; registry) echo "$REGISTRY_PORT" ;; postgres) echo "$POSTGRES_PORT" ;;
    redis) echo "$REDIS_PORT" ;; influxdb) echo "$INFLUX_PORT" ;; mosquitto) echo "$MQTT_PORT" ;;
    influxdb2) echo "$INFLUX2_PORT" ;;
    *) die "unknown service '$1' (known: ${ALL_SERVICES[*]} ${OPTIONAL_SERVICES[*]})" ;;
  esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() {
  local f="$RUN/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# answers SERVICE: true when the service does real work on its port, not only accepts a connection.
answers() {
  local port; port="$(port_of "$1")"
  case "$1" in
    kafka) port_open "$port" && grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$LOGS/kafka.log" 2>/dev/null ;;
    registry) curl -sf -m 2 "http://127.0.0.1:$port/apis/ccompat/v7/subjects" >/dev/null ;;
    postgres) "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" ;;
    redis) [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == "PONG" ]] ;;
    influxdb) curl -sf -m 2 "http://127.0.0.1:$port/ping" >/dev/null ;;
    influxdb2) curl -sf -m 2 "http://127.0.0.1:$port/ping" >/dev/null ;;
    mosquitto) port_open "$port" ;;
  esac
}

wait_until_answers() {
  local svc="$1" secs="$2" i
  for ((i = 0; i < secs * 4; i++)); do
    answers "$svc" && return 0
    if ! pid_alive "$svc"; then
      tail -n 30 "$LOGS/$svc.log" >&2 || true
      die "$svc exited during start-up; its log is $LOGS/$svc.log"
    fi
    sleep 0.25
  done
  tail -n 30 "$LOGS/$svc.log" >&2 || true
  die "$svc did not answer on 127.0.0.1:$(port_of "$svc") within ${secs}s; its log is $LOGS/$svc.log"
}

# refuse to start on a port some other process holds: a clear message, never a hang.
check_port_free() {
  local svc="$1" port; port="$(port_of "$1")"
  if port_open "$port"; then
    die "port $port for $svc is already in use by another process; stop it or set FLEET_$(echo "$svc" | tr a-z A-Z)_PORT"
  fi
}

spawn() {  # spawn SERVICE CMD... : start in its own session, log to .local/logs, remember the pid
  local svc="$1"; shift
  mkdir -p "$RUN" "$LOGS"
  setsid "$@" >>"$LOGS/$svc.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$svc.pid"
}

apt_install() {  # apt_install PACKAGE... : installs Debian packages once
  local missing=()
  # a removed package keeps its config files and still answers `dpkg -s`: ask for the installed state
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]} (once)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- kafka
install_kafka() {
  local lib="$LOCAL/kafka/lib"
  if [[ -f "$lib/.complete-$KAFKA_VERSION" ]]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka from Maven Central"
  log "fetching Apache Kafka $KAFKA_VERSION and its runtime jars from Maven Central (cached in ~/.m2)"
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$HERE/pom.xml" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$LOCAL/kafka/mvn.log" 2>&1 \
    || { tail -n 20 "$LOCAL/kafka/mvn.log" >&2; die "Maven could not fetch Kafka"; }
  touch "$lib/.complete-$KAFKA_VERSION"
}

start_kafka() {
  install_kafka
  local dir="$LOCAL/kafka" cfg="$LOCAL/kafka/server.properties"
  mkdir -p "$dir/data"
  cat >"$cfg" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
transaction.max.timeout.ms=900000
log.retention.check.interval.ms=300000
EOF
  cat >"$dir/log4j2.yaml" <<'EOF'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout: {Pattern: "[%d] %p %m (%c)%n"}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: STDOUT}]}
    Logger:
      - {name: kafka.request.logger, level: WARN}
      - {name: org.apache.kafka.coordinator, level: WARN}
      - {name: kafka.log.LogCleaner, level: WARN}
EOF
  local java=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$dir/lib/*")
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$dir/cluster-id" 2>/dev/null || "${java[@]}" kafka.tools.StorageTool random-uuid | tee "$dir/cluster-id")" \
      -c "$cfg" --ignore-formatted >"$LOGS/kafka-format.log" 2>&1 \
      || { cat "$LOGS/kafka-format.log" >&2; die "could not format Kafka storage"; }
  fi
  : >"$LOGS/kafka.log"
  spawn kafka "${java[@]}" kafka.Kafka "$cfg"
  wait_until_answers kafka 90
}

# ---------------------------------------------------------------- schema registry (Apicurio)
install_registry() {
  local dir="$LOCAL/registry/$APICURIO_VERSION"
  [[ -f "$dir/apicurio-registry-app-$APICURIO_VERSION-runner.jar" ]] && return 0
  log "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (cached in ~/.m2)"
  mvn -q -B dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:zip:all" \
    -DoutputDirectory="$LOCAL/registry" -Dmdep.overWriteIfNewer=true >"$LOCAL/registry-mvn.log" 2>&1 \
    || { tail -n 20 "$LOCAL/registry-mvn.log" >&2; die "Maven could not fetch Apicurio Registry"; }
  mkdir -p "$dir"
  (cd "$dir" && unzip -q -o "$LOCAL/registry/apicurio-registry-app-$APICURIO_VERSION-all.zip")
  rm -f "$LOCAL/registry/apicurio-registry-app-$APICURIO_VERSION-all.zip"
}

start_registry() {
  mkdir -p "$LOCAL/registry"
  install_registry
  local dir="$LOCAL/registry/$APICURIO_VERSION"
  # In-memory H2 storage: schemas are re-registered by `fleet schemas register` at every start.
  spawn registry java -Xms128m -Xmx512m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.log.level=WARN -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true -Dapicurio.rest.deletion.group.enabled=true \
    -jar "$dir/apicurio-registry-app-$APICURIO_VERSION-runner.jar"
  wait_until_answers registry 90
}

# ---------------------------------------------------------------- postgres
# PostgreSQL will not run as root, so it runs as the 'postgres' user. When that user cannot reach
# .local/ (a checkout under a private temp folder), its data lives in a private folder of its own
# and .local/postgres is a link to it.
pg_datadir() {  # prints the real path: the 'postgres' user may not be able to follow .local/postgres
  if [[ -L "$LOCAL/postgres" || -d "$LOCAL/postgres" ]]; then echo "$(readlink -f "$LOCAL/postgres")/data"; return; fi
  if [[ $(id -u) -ne 0 ]] || runuser -u postgres -- test -w "$LOCAL"; then
    mkdir -p "$LOCAL/postgres"
  else
    local alt; alt="/var/tmp/fleetstream-pg-$(echo "$ROOT" | md5sum | cut -c1-12)"
    mkdir -p "$alt"; chown postgres: "$alt"; chmod 700 "$alt"
    ln -sfn "$alt" "$LOCAL/postgres"
  fi
  echo "$(readlink -f "$LOCAL/postgres")/data"
}

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  [[ -x "$PG_BIN/postgres" ]] || apt_install postgresql
  [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL server not found in $PG_BIN (set FLEET_PG_BIN)"
  local data; data="$(pg_datadir)"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$(dirname "$data")"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initialising PostgreSQL data in $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U fleet --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOGS/postgres-init.log" 2>&1 \
      || { cat "$LOGS/postgres-init.log" >&2; die "initdb failed"; }
  fi
  local sock; sock="$(dirname "$data")"
  mkdir -p "$LOGS"; touch "$LOGS/postgres.log"; [[ $(id -u) -eq 0 ]] && chown postgres: "$LOGS/postgres.log"
  mkdir -p "$RUN"
  if [[ $(id -u) -eq 0 ]]; then
    setsid runuser -u postgres -- "$PG_BIN/postgres" -D "$data" -p "$POSTGRES_PORT" -c listen_addresses=127.0.0.1 \
      -c unix_socket_directories="$sock" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c max_connections=200 >>"$LOGS/postgres.log" 2>&1 </dev/null &
  else
    setsid "$PG_BIN/postgres" -D "$data" -p "$POSTGRES_PORT" -c listen_addresses=127.0.0.1 \
      -c unix_socket_directories="$sock" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c max_connections=200 >>"$LOGS/postgres.log" 2>&1 </dev/null &
  fi
  echo $! >"$RUN/postgres.pid"
  wait_until_answers postgres 30
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U fleet -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='fleetstream'" | grep -q 1 \
    || "$PG_BIN/psql" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U fleet -d postgres -c "CREATE DATABASE fleetstream" >/dev/null
}

# ---------------------------------------------------------------- redis
# Persistent (append-only file under .local/redis, fsync every second): a restart keeps the hot views.
# Should they be lost anyway, the Redis sink rebuilds them from the topics (sinks/redis.py).
start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$LOCAL/redis"
  spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$LOCAL/redis" --save "" \
    --appendonly yes --appendfsync everysec --protected-mode yes --daemonize no
  wait_until_answers redis 15
}

# ---------------------------------------------------------------- influxdb 1.x and 1.12
# write_influx_config DIR HTTP_PORT RPC_PORT: one influxd's config, all state under DIR.
write_influx_config() {
  local dir="$1"
  mkdir -p "$dir"
  cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$3"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$2"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
EOF
}

start_influxdb() {
  command -v influxd >/dev/null || apt_install influxdb influxdb-client
  write_influx_config "$LOCAL/influxdb" "$INFLUX_PORT" "$INFLUX_RPC_PORT"
  spawn influxdb influxd -config "$LOCAL/influxdb/influxdb.conf"
  wait_until_answers influxdb 30
}

# influxd 1.12 serves /api/v2/write; Debian has 1.6 only, so it is built from Go modules (once).
start_influxdb2() {
  local bin
  bin="$("$HERE/install-influxd.sh")" || die "could not build influxd 1.12 (see the messages above)"
  write_influx_config "$LOCAL/influxdb2" "$INFLUX2_PORT" "$INFLUX2_RPC_PORT"
  spawn influxdb2 "$bin" -config "$LOCAL/influxdb2/influxdb.conf"
  wait_until_answers influxdb2 30
}

# ---------------------------------------------------------------- mosquitto
start_mosquitto() {
  command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || apt_install mosquitto mosquitto-clients
  local dir="$LOCAL/mosquitto"
  mkdir -p "$dir"
  # Development accounts, all with the password fleetstream-dev: the bridge, the simulator, a read-only
  # observer, and eight vehicles named as the ACL expects ("<manufacturer>/<serialNumber>"). deploy/local/mosquitto/acl says
  # who may publish and read what; anonymous clients are refused.
  local passwd="$dir/passwd"
  : >"$passwd"
  local account
  for account in fleetstream-bridge fleetstream-sim fleetstream-observer dev/agv-0{1..8}; do
    mosquitto_passwd -b "$passwd" "$account" fleetstream-dev
  done
  chmod 600 "$passwd"
  cat >"$dir/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous false
password_file $passwd
acl_file $HERE/mosquitto/acl
persistence false
user root
EOF
  local bin; bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  spawn mosquitto "$bin" -c "$dir/mosquitto.conf"
  wait_until_answers mosquitto 15
}

# ---------------------------------------------------------------- commands
up_one() {
  local svc="$1" t0=$SECONDS
  if pid_alive "$svc" && answers "$svc"; then
    log "$svc already running on 127.0.0.1:$(port_of "$svc")"
    return 0
  fi
  if pid_alive "$svc"; then
    log "$svc is starting (pid $(cat "$RUN/$svc.pid")); waiting"
    wait_until_answers "$svc" 90
    return 0
  fi
  check_port_free "$svc"
  log "starting $svc on 127.0.0.1:$(port_of "$svc")"
  "start_$svc"
  log "$svc up in $((SECONDS - t0))s"
}

down_one() {
  local svc="$1" f="$RUN/$1.pid"
  [[ -f "$f" ]] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $svc (pid $pid)"
    # each service runs in its own session: signal the whole group so no child is left behind
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$svc did not stop in 20s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

status() {
  printf '%-10s %-7s %-8s %s\n' SERVICE PORT STATE PID
  local svc state pid
  for svc in "${ALL_SERVICES[@]}" "${OPTIONAL_SERVICES[@]}"; do
    pid="-"; pid_alive "$svc" && pid="$(cat "$RUN/$svc.pid")"
    if answers "$svc"; then state="up"; elif [[ "$pid" != "-" ]]; then state="starting"; else state="down"; fi
    printf '%-10s %-7s %-8s %s\n' "$svc" "$(port_of "$svc")" "$state" "$pid"
  done
}

print_env() {
  cat <<EOF
export FLEET_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export FLEET_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
export FLEET_POSTGRES_DSN=postgresql://fleet@127.0.0.1:$POSTGRES_PORT/fleetstream
export FLEET_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export FLEET_INFLUX_URL=http://127.0.0.1:$INFLUX_PORT
export FLEET_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
EOF
}

main() {
  local cmd="${1:-}"; shift || true
  local services=("$@")
  if ((${#services[@]} == 0)); then
    services=("${ALL_SERVICES[@]}")
    [[ "$cmd" == down ]] && services+=("${OPTIONAL_SERVICES[@]}")
  fi
  for s in "${services[@]}"; do port_of "$s" >/dev/null; done
  mkdir -p "$RUN" "$LOGS"
  case "$cmd" in
    up) local t0=$SECONDS; for s in "${services[@]}"; do up_one "$s"; done; log "stack ready in $((SECONDS - t0))s" ;;
    down) local i; for ((i = ${#services[@]} - 1; i >= 0; i--)); do down_one "${services[i]}"; done ;;
    status) status ;;
    env) print_env ;;
    -h|--help|help|"") sed -n '2,/^set -euo/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (up, down, status, env)" ;;
  esac
}

main "$@"
