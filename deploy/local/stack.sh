#!/usr/bin/env bash
# The real local stack for fleetstream, as local processes on 127.0.0.1 (no Docker).
#
#   deploy/local/stack.sh up [--brokers N] [SERVICE...]  install (once, cached) and start; a running service is left alone
#   deploy/local/stack.sh down [SERVICE...]    stop what `up` started (Kafka nodes shut down cleanly)
#   deploy/local/stack.sh kill SERVICE...      SIGKILL, no clean shutdown (drills: `kill kafka-2`)
#   deploy/local/stack.sh status               each service, its port, and whether it answers
#   deploy/local/stack.sh env                  the FLEET_* variables that point clients at this stack
#   deploy/local/stack.sh kafka-tool CLASS ARGS...  run a class of Kafka's kafka-tools jar (fetched once)
#                                              against this stack, e.g. org.apache.kafka.tools.FeatureCommand
#
# SERVICE is any of: kafka registry postgres redis influxdb mosquitto (default: all), or influxdb2:
# InfluxDB 1.12 with /api/v2/write for the sink's v2 tests, built from Go modules by install-influxd.sh
# (once, ~15-20 min, cached in ~/.cache/fleetstream); only started when named (`make test` does), and
# stopped and reported with the others; or cluster: a second Kafka of three KRaft nodes beside the
# stack's own (its data under .local/cluster, its first broker on FLEET_KAFKA_CLUSTER_PORT), for the
# drills and the cluster benchmarks; also only started when named.
#
# Kafka is one KRaft node by default. `up --brokers 3` (or FLEET_KAFKA_BROKERS=3) runs it as three
# combined broker+controller nodes kafka-1..kafka-3 instead, one cluster id, formatted with
# --initial-controllers (KIP-853) and the transaction.version=2 feature (KIP-890): node n listens on
# FLEET_KAFKA_PORT+2(n-1), its controller on FLEET_KAFKA_CONTROLLER_PORT+2(n-1); topics default to
# replication 3 and min.insync.replicas 2, and so do the offsets and transaction-state topics. A
# cluster node can be named alone (`up kafka-2`, `down kafka-2`, `kill kafka-2`). Single-node and
# cluster data are kept apart (.local/kafka/data, .local/kafka/cluster); switching needs `down kafka`.
# Data, logs and pid files live under .local/ (git-ignored). Ports come from the environment:
#   FLEET_KAFKA_PORT=19092 FLEET_KAFKA_CONTROLLER_PORT=19093 FLEET_REGISTRY_PORT=18081
#   FLEET_POSTGRES_PORT=15432 FLEET_REDIS_PORT=16379 FLEET_INFLUX_PORT=18086 FLEET_MQTT_PORT=11883
#   FLEET_INFLUXDB2_PORT=18087 FLEET_INFLUXDB2_RPC_PORT=18089 FLEET_KAFKA_CLUSTER_PORT=FLEET_KAFKA_PORT+2
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
CLUSTER_PORT="${FLEET_KAFKA_CLUSTER_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_BROKERS="${FLEET_KAFKA_BROKERS:-}"  # empty: as many as run now, else 1 (`up --brokers N` sets it)
KAFKA_LIB="${FLEET_KAFKA_LIB:-$LOCAL/kafka/lib}"
KAFKA_TOOLS_LIB="${FLEET_KAFKA_TOOLS_LIB:-$LOCAL/kafka/tools-lib}"
CLUSTER_DIR="$LOCAL/kafka/cluster"

ALL_SERVICES=(kafka registry postgres redis influxdb mosquitto)
OPTIONAL_SERVICES=(influxdb2 cluster)  # started only when named; `down` and `status` include them
[[ "$CLUSTER_PORT" != 0 ]] || OPTIONAL_SERVICES=(influxdb2)  # the cluster's own invocation of this script

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

port_of() {
  case "$1" in
    kafka) echo "$KAFKA_PORT" ;; kafka-[1-9]) echo "$(node_port "${1#kafka-}")" ;;
    cluster) echo "$CLUSTER_PORT" ;; registry) echo "$REGISTRY_PORT" ;; postgres) echo "$POSTGRES_PORT" ;;
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
    kafka) port_open "$port" && grep -q "Kafka Server started" "$LOGS/kafka.log" 2>/dev/null ;;
    kafka-[1-9]) port_open "$port" && grep -q "Kafka Server started" "$LOGS/$1.log" 2>/dev/null ;;
    cluster) cluster_answers ;;
    registry) curl -sf -m 2 "http://127.0.0.1:$port/apis/ccompat/v7/subjects" >/dev/null ;;
    postgres) "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" ;;
    redis) [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == "PONG" ]] ;;
    influxdb) curl -sf -m 2 "http://127.0.0.1:$port/ping" >/dev/null ;;
    influxdb2) curl -sf -m 2 "http://127.0.0.1:$port/ping" >/dev/null ;;
    mosquitto) port_open "$port" ;;
  esac
}

cluster_answers() {  # every node of the separate cluster (the `cluster` service) runs and serves
  local n dir="$LOCAL/cluster"
  for n in 1 2 3; do
    [[ -f "$dir/run/kafka-$n.pid" ]] && kill -0 "$(cat "$dir/run/kafka-$n.pid")" 2>/dev/null || return 1
    port_open $((CLUSTER_PORT + 2 * (n - 1))) && grep -q "Kafka Server started" "$dir/logs/kafka-$n.log" 2>/dev/null || return 1
  done
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
  local lib="$KAFKA_LIB"
  if [[ -f "$lib/.complete-$KAFKA_VERSION" ]]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka from Maven Central"
  log "fetching Apache Kafka $KAFKA_VERSION and its runtime jars from Maven Central (cached in ~/.m2)"
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$HERE/pom.xml" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$lib/../mvn.log" 2>&1 \
    || { tail -n 20 "$lib/../mvn.log" >&2; die "Maven could not fetch Kafka"; }
  touch "$lib/.complete-$KAFKA_VERSION"
}

# Kafka's kafka-tools jar (VerifiableProducer/Consumer, TransactionalMessageCopier, the quorum and feature
# commands) pulls in Connect and Jetty: it gets a class path of its own, fetched on first use.
install_kafka_tools() {
  local lib="$KAFKA_TOOLS_LIB"
  if [[ -f "$lib/.complete-$KAFKA_VERSION" ]]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch kafka-tools from Maven Central"
  log "fetching kafka-tools $KAFKA_VERSION and its runtime jars from Maven Central (once)"
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$HERE/pom.xml" -P kafka-tools -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$lib/../mvn-tools.log" 2>&1 \
    || { tail -n 20 "$lib/../mvn-tools.log" >&2; die "Maven could not fetch kafka-tools"; }
  touch "$lib/.complete-$KAFKA_VERSION"
}

kafka_java() {  # kafka_java CLASSPATH_DIR LOG4J_FILE HEAP : the JVM command line of a Kafka process
  printf '%s\n' java "-Xms128m" "-Xmx$3" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$2" -cp "$1/*"
}

write_kafka_log4j() {  # write_kafka_log4j FILE
  cat >"$1" <<'EOF'
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
  write_kafka_log4j "$dir/log4j2.yaml"
  local java; mapfile -t java < <(kafka_java "$KAFKA_LIB" "$dir/log4j2.yaml" 1g)
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$dir/cluster-id" 2>/dev/null || "${java[@]}" kafka.tools.StorageTool random-uuid | tee "$dir/cluster-id")" \
      -c "$cfg" --ignore-formatted >"$LOGS/kafka-format.log" 2>&1 \
      || { cat "$LOGS/kafka-format.log" >&2; die "could not format Kafka storage"; }
  fi
  : >"$LOGS/kafka.log"
  spawn kafka "${java[@]}" kafka.Kafka "$cfg"
  wait_until_answers kafka 90
}

# ---- Kafka as a cluster of N combined KRaft nodes (kafka-1..kafka-N)
node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
node_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }

# cluster_size: the nodes of the cluster formatted under .local/kafka/cluster (0: none).
cluster_size() { cat "$CLUSTER_DIR/brokers" 2>/dev/null || echo 0; }

# kafka_running_as: "single", "cluster" or "" (nothing of Kafka runs).
kafka_running_as() {
  if pid_alive kafka; then echo single; return; fi
  local n; for ((n = 1; n <= $(cluster_size); n++)); do pid_alive "kafka-$n" && { echo cluster; return; }; done
  echo ""
}

# kafka_brokers: how many brokers `up` means: --brokers/FLEET_KAFKA_BROKERS, else the running cluster's, else 1.
kafka_brokers() {
  if [[ -n "$KAFKA_BROKERS" ]]; then echo "$KAFKA_BROKERS"; return; fi
  if [[ "$(kafka_running_as)" == cluster ]]; then cluster_size; else echo 1; fi
}

kafka_nodes() { local n; for ((n = 1; n <= $1; n++)); do echo "kafka-$n"; done; }

# prepare_cluster N: the cluster's ids, node configs and formatted storage (once; the same N afterwards).
prepare_cluster() {
  local size="$1" n
  [[ "$size" =~ ^[2-9]$ ]] || die "--brokers $size: a cluster has 2 to 9 nodes (1 is the single-node default)"
  if [[ -f "$CLUSTER_DIR/brokers" && "$(cluster_size)" != "$size" ]]; then
    die "the cluster in $CLUSTER_DIR was formatted with $(cluster_size) nodes, not $size; remove that folder (its data) to change it"
  fi
  install_kafka
  mkdir -p "$CLUSTER_DIR"
  local ports=()
  for ((n = 1; n <= size; n++)); do ports+=("$(node_port "$n")" "$(node_controller_port "$n")"); done
  if [[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) -ne ${#ports[@]} ]]; then
    die "cluster ports collide (${ports[*]}): node n uses FLEET_KAFKA_PORT+2(n-1) and FLEET_KAFKA_CONTROLLER_PORT+2(n-1); set FLEET_KAFKA_CONTROLLER_PORT=FLEET_KAFKA_PORT+1"
  fi
  # the controllers' addresses are written into the formatted storage (--initial-controllers)
  if [[ -f "$CLUSTER_DIR/ports" && "$(cat "$CLUSTER_DIR/ports")" != "${ports[*]}" ]]; then
    die "the cluster in $CLUSTER_DIR was formatted with ports $(cat "$CLUSTER_DIR/ports"), not ${ports[*]}; use those FLEET_*_PORT values again, or remove that folder (its data) to change them"
  fi
  write_kafka_log4j "$CLUSTER_DIR/log4j2.yaml"
  local java; mapfile -t java < <(kafka_java "$KAFKA_LIB" "$CLUSTER_DIR/log4j2.yaml" 256m)
  # random-uuid prints log lines before the id: the id is the last line
  [[ -s "$CLUSTER_DIR/cluster-id" ]] || "${java[@]}" kafka.tools.StorageTool random-uuid | tail -n 1 >"$CLUSTER_DIR/cluster-id"
  local bootstrap="" initial=""
  for ((n = 1; n <= size; n++)); do
    mkdir -p "$CLUSTER_DIR/node-$n"
    [[ -s "$CLUSTER_DIR/node-$n/directory-id" ]] \
      || "${java[@]}" kafka.tools.StorageTool random-uuid | tail -n 1 >"$CLUSTER_DIR/node-$n/directory-id"
    bootstrap+="${bootstrap:+,}127.0.0.1:$(node_controller_port "$n")"
    initial+="${initial:+,}$n@127.0.0.1:$(node_controller_port "$n"):$(cat "$CLUSTER_DIR/node-$n/directory-id")"
  done
  local rf=$((size < 3 ? size : 3)) isr=2
  for ((n = 1; n <= size; n++)); do
    local dir="$CLUSTER_DIR/node-$n" port ctl
    port="$(node_port "$n")"; ctl="$(node_controller_port "$n")"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.bootstrap.servers=$bootstrap
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
default.replication.factor=$rf
min.insync.replicas=$isr
unclean.leader.election.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
transaction.max.timeout.ms=900000
log.retention.check.interval.ms=300000
# a hard-killed node is fenced, and its partitions led elsewhere, within 6 s (default 9 s)
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
EOF
    if [[ ! -f "$dir/data/meta.properties" ]]; then
      "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$CLUSTER_DIR/cluster-id")" -c "$dir/server.properties" \
        --initial-controllers "$initial" --feature transaction.version=2 --ignore-formatted \
        >"$LOGS/kafka-$n-format.log" 2>&1 \
        || { cat "$LOGS/kafka-$n-format.log" >&2; die "could not format the storage of kafka-$n"; }
    fi
  done
  echo "$size" >"$CLUSTER_DIR/brokers"
  echo "${ports[*]}" >"$CLUSTER_DIR/ports"
}

start_kafka_node() {  # start_kafka_node N : one node of the formatted cluster, not waiting for it
  local n="$1" dir="$CLUSTER_DIR/node-$1"
  [[ -f "$dir/server.properties" ]] || die "kafka-$n is not a node of a formatted cluster: run \`up --brokers N\` first"
  local java; mapfile -t java < <(kafka_java "$KAFKA_LIB" "$CLUSTER_DIR/log4j2.yaml" 512m)
  : >"$LOGS/kafka-$n.log"
  spawn "kafka-$n" "${java[@]}" kafka.Kafka "$dir/server.properties"
}

# the separate three-node cluster of the drills and benchmarks: this script again, on its own folder and ports
cluster_stack() {
  FLEET_LOCAL_DIR="$LOCAL/cluster" FLEET_KAFKA_PORT="$CLUSTER_PORT" FLEET_KAFKA_CONTROLLER_PORT="$((CLUSTER_PORT + 1))" \
    FLEET_KAFKA_LIB="$KAFKA_LIB" FLEET_KAFKA_TOOLS_LIB="$KAFKA_TOOLS_LIB" FLEET_KAFKA_BROKERS=3 \
    FLEET_KAFKA_CLUSTER_PORT=0 "${BASH_SOURCE[0]}" "$@"
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
  # append-only file, fsynced every second: a stop and start keeps the hot views (the drills take Redis
  # down and expect the sink to carry on from what it holds, as a production Redis with persistence does)
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
  if [[ "$svc" == kafka && "$(kafka_brokers)" -gt 1 ]]; then up_kafka_cluster "$(kafka_brokers)"; return; fi
  if [[ "$svc" == cluster ]]; then cluster_stack up kafka; return; fi
  if pid_alive "$svc" && answers "$svc"; then
    log "$svc already running on 127.0.0.1:$(port_of "$svc")"
    return 0
  fi
  if pid_alive "$svc"; then
    log "$svc is starting (pid $(cat "$RUN/$svc.pid")); waiting"
    wait_until_answers "$svc" 240
    return 0
  fi
  case "$svc" in
    kafka) [[ "$(kafka_running_as)" != cluster ]] \
      || die "Kafka runs as a cluster of $(cluster_size) nodes; \`$0 down kafka\` first to run one node" ;;
    kafka-[1-9]) [[ "$(kafka_running_as)" != single ]] || die "Kafka runs as one node, not as a cluster" ;;
  esac
  check_port_free "$svc"
  log "starting $svc on 127.0.0.1:$(port_of "$svc")"
  case "$svc" in
    # a node coming back loads every partition it holds: slow on a busy machine
    kafka-[1-9]) start_kafka_node "${svc#kafka-}"; wait_until_answers "$svc" 240 ;;
    *) "start_$svc" ;;
  esac
  log "$svc up in $((SECONDS - t0))s"
}

# up_kafka_cluster N: every node of an N-node cluster; a node only answers once a quorum of controllers
# runs, so all are started before any is waited for.
up_kafka_cluster() {
  local size="$1" t0=$SECONDS n svc started=()
  [[ "$(kafka_running_as)" != single ]] \
    || die "Kafka runs as one node; \`$0 down kafka\` first to run it as $size brokers"
  prepare_cluster "$size"
  for ((n = 1; n <= size; n++)); do
    svc="kafka-$n"
    pid_alive "$svc" && continue
    check_port_free "$svc"
    port_open "$(node_controller_port "$n")" \
      && die "port $(node_controller_port "$n") for the controller of $svc is already in use by another process; stop it or set FLEET_KAFKA_CONTROLLER_PORT"
    log "starting $svc on 127.0.0.1:$(node_port "$n") (controller $(node_controller_port "$n"))"
    start_kafka_node "$n"
    started+=("$svc")
  done
  for ((n = 1; n <= size; n++)); do wait_until_answers "kafka-$n" 120; done
  if ((${#started[@]})); then
    log "kafka: $size brokers up in $((SECONDS - t0))s (${started[*]} started)"
  else
    log "kafka already running as $size brokers on 127.0.0.1:$(node_port 1)..$(node_port "$size")"
  fi
}

down_one() {
  local svc="$1" f="$RUN/$1.pid"
  if [[ "$svc" == cluster ]]; then cluster_stack down kafka; return; fi
  if [[ "$svc" == kafka ]]; then
    local nodes=() n
    for ((n = $(cluster_size); n >= 1; n--)); do [[ -f "$RUN/kafka-$n.pid" ]] && nodes+=("kafka-$n"); done
    # all nodes at once: one by one, the last ones would wait for a quorum that is already gone
    ((${#nodes[@]})) && stop_together "${nodes[@]}"
  fi
  [[ -f "$f" ]] || return 0
  stop_together "$svc"
}

stop_together() {  # stop_together SERVICE... : SIGTERM each (its whole group), SIGKILL what is left after 20 s
  local svc pid pids=() names=()
  for svc in "$@"; do
    [[ -f "$RUN/$svc.pid" ]] || continue
    pid="$(cat "$RUN/$svc.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $svc (pid $pid)"
      # each service runs in its own session: signal the whole group so no child is left behind
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$svc")
    fi
  done
  local i
  for _ in $(seq 1 80); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.25
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      log "${names[i]} did not stop in 20s; killing it"
      kill -KILL -- "-${pids[i]}" 2>/dev/null || kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
  done
  for svc in "$@"; do rm -f "$RUN/$svc.pid"; done
}

kill_one() {  # kill_one SERVICE : SIGKILL, no clean shutdown (what a crash or an OOM kill does)
  local svc="$1" f="$RUN/$1.pid"
  [[ -f "$f" ]] || die "$svc is not running (no $f)"
  local pid; pid="$(cat "$f")"
  log "killing $svc (pid $pid) with SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  rm -f "$f"
}

# the rows of Kafka in `status`: its nodes when it runs as a cluster, else one row
kafka_rows() {
  if [[ "$(kafka_running_as)" == cluster ]]; then kafka_nodes "$(cluster_size)"; else echo kafka; fi
}

status() {
  printf '%-10s %-7s %-8s %s\n' SERVICE PORT STATE PID
  local svc state pid
  for svc in $(kafka_rows) "${ALL_SERVICES[@]:1}" "${OPTIONAL_SERVICES[@]}"; do
    pid="-"; pid_alive "$svc" && pid="$(cat "$RUN/$svc.pid")"
    if answers "$svc"; then state="up"; elif [[ "$pid" != "-" ]]; then state="starting"; else state="down"; fi
    printf '%-10s %-7s %-8s %s\n' "$svc" "$(port_of "$svc")" "$state" "$pid"
  done
}

kafka_bootstrap() {  # the bootstrap list of the stack's Kafka (every node of a cluster)
  local brokers n out=""; brokers="$(kafka_brokers)"
  if ((brokers == 1)); then echo "127.0.0.1:$KAFKA_PORT"; return; fi
  for ((n = 1; n <= brokers; n++)); do out+="${out:+,}127.0.0.1:$(node_port "$n")"; done
  echo "$out"
}

print_env() {
  cat <<EOF
export FLEET_KAFKA_BOOTSTRAP_SERVERS=$(kafka_bootstrap)
export FLEET_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
export FLEET_POSTGRES_DSN=postgresql://fleet@127.0.0.1:$POSTGRES_PORT/fleetstream
export FLEET_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export FLEET_INFLUX_URL=http://127.0.0.1:$INFLUX_PORT
export FLEET_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
EOF
}

kafka_tool() {  # kafka_tool CLASS ARGS... : a class of kafka-tools on its own class path, logging warnings only
  install_kafka_tools
  local cfg="$KAFKA_TOOLS_LIB/../tools-log4j2.yaml"
  cat >"$cfg" <<'EOF'
Configuration:
  Appenders:
    Console:
      name: STDERR
      target: SYSTEM_ERR
      PatternLayout: {Pattern: "[%d] %p %m (%c)%n"}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDERR}]}
EOF
  exec java -Xms64m -Xmx256m -Dlog4j2.configurationFile="$cfg" -cp "$KAFKA_TOOLS_LIB/*" "$@"
}

main() {
  local cmd="${1:-}"; shift || true
  if [[ "$cmd" == kafka-tool ]]; then kafka_tool "$@"; fi
  local services=()
  while (($#)); do
    case "$1" in
      --brokers) [[ "$cmd" == up ]] || die "--brokers is an option of up"
        [[ "${2:-}" =~ ^[1-9]$ ]] || die "--brokers takes a count of 1 to 9, got '${2:-}'"
        KAFKA_BROKERS="$2"; shift 2 ;;
      --brokers=*) [[ "${1#*=}" =~ ^[1-9]$ ]] || die "--brokers takes a count of 1 to 9, got '${1#*=}'"
        KAFKA_BROKERS="${1#*=}"; shift ;;
      *) services+=("$1"); shift ;;
    esac
  done
  if ((${#services[@]} == 0)); then
    services=("${ALL_SERVICES[@]}")
    [[ "$cmd" == down ]] && services+=("${OPTIONAL_SERVICES[@]}")
  fi
  for s in "${services[@]}"; do port_of "$s" >/dev/null; done
  mkdir -p "$RUN" "$LOGS"
  case "$cmd" in
    up) local t0=$SECONDS; for s in "${services[@]}"; do up_one "$s"; done; log "stack ready in $((SECONDS - t0))s" ;;
    down) local i; for ((i = ${#services[@]} - 1; i >= 0; i--)); do down_one "${services[i]}"; done ;;
    kill) for s in "${services[@]}"; do kill_one "$s"; done ;;
    status) status ;;
    env) print_env ;;
    -h|--help|help|"") sed -n '2,/^set -euo/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (up, down, kill, status, env, kafka-tool)" ;;
  esac
}

main "$@"
