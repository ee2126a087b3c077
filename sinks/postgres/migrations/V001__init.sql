-- V001: the facts fleetstream projects from Kafka. One table per record family; timestamps are timestamptz
-- (the records carry epoch ms). Event tables are append-only and keyed by event_id (replays insert
-- nothing); current-state tables (tasks, robots, sites) are upserted under a guard (seq, or event time then
-- event id) so that a replay never moves a row backwards.

CREATE TABLE tenants (
    tenant_id     text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL          -- event time of the earliest record seen for the tenant
);

-- Latest snapshot per robot: registration columns from robot.registry, runtime columns from robot.status.
CREATE TABLE robots (
    tenant_id         text NOT NULL,
    robot_id          text NOT NULL,
    site_id           text,
    fleet_id          text,
    name              text,
    model             text,
    capabilities      text[] NOT NULL DEFAULT '{}',
    max_payload_kg    double precision,
    managed_by        text,                     -- FLEETSTREAM | RMF
    active            boolean,                  -- false once the registration is deleted (tombstone)
    registered_at     timestamptz,              -- event time of the registration applied
    registry_event_id text,
    status            text,                     -- IDLE, MOVING, WORKING, CHARGING, ERROR, OFFLINE, UNKNOWN
    previous_status   text,
    status_reason     text,                     -- CHANGE, HEARTBEAT, OFFLINE, RMF
    battery           double precision,
    pose              jsonb,                    -- {x, y, yaw, node_id, map_name}
    speed             double precision,
    task_id           text,
    route             jsonb,                    -- [{node_id, eta (epoch ms)}]
    telemetry_seq     bigint,
    last_seen_at      timestamptz,
    status_at         timestamptz,              -- event time of the status applied
    status_event_id   text,
    updated_at        timestamptz GENERATED ALWAYS AS (GREATEST(status_at, registered_at)) STORED,
    PRIMARY KEY (tenant_id, robot_id)
);
CREATE INDEX robots_site ON robots (tenant_id, site_id);

CREATE TABLE sites (
    tenant_id    text NOT NULL,
    site_id      text NOT NULL,
    name         text,
    map_version  integer NOT NULL,              -- the latest version in site_maps
    updated_at   timestamptz NOT NULL,
    map_event_id text NOT NULL,
    PRIMARY KEY (tenant_id, site_id)
);

CREATE TABLE site_maps (
    tenant_id   text NOT NULL,
    site_id     text NOT NULL,
    version     integer NOT NULL,
    name        text,
    nodes       jsonb NOT NULL,                 -- [{id, x, y, kind, name}]
    lanes       jsonb NOT NULL,                 -- [{id, from_node, to_node, bidirectional, speed_limit}]
    zones       jsonb NOT NULL,                 -- [{id, kind, polygon: [{x, y}]}]
    chargers    jsonb NOT NULL,                 -- [{id, node_id}]
    occurred_at timestamptz NOT NULL,
    event_id    text NOT NULL,
    PRIMARY KEY (tenant_id, site_id, version)
);

-- Current state per task (TRANSITION events only; REJECTED/DUPLICATE leave it as it is).
CREATE TABLE tasks (
    tenant_id     text NOT NULL,
    task_id       text NOT NULL,
    site_id       text,
    state         text NOT NULL,
    attempt       integer NOT NULL,
    robot_id      text,
    external_id   text,                         -- RMF booking id
    reason        text,
    category      text,
    priority      integer,
    spec          jsonb,                        -- the TaskSpec of the CREATED event
    depends_on    text[],
    created_at    timestamptz,
    updated_at    timestamptz NOT NULL,         -- event time of the last transition
    seq           bigint NOT NULL,              -- seq of the last transition applied (the upsert guard)
    last_event_id text NOT NULL,
    PRIMARY KEY (tenant_id, task_id)
);
CREATE INDEX tasks_state ON tasks (tenant_id, state, site_id);

CREATE TABLE task_events (
    event_id       text PRIMARY KEY,
    tenant_id      text NOT NULL,
    site_id        text,
    task_id        text NOT NULL,
    seq            bigint NOT NULL,
    kind           text NOT NULL,               -- TRANSITION | REJECTED | DUPLICATE
    state          text NOT NULL,
    previous_state text,
    reason         text,
    robot_id       text,
    attempt        integer NOT NULL,
    spec           jsonb,
    external_id    text,
    causation_id   text,
    occurred_at    timestamptz NOT NULL,
    UNIQUE (task_id, seq)
);
CREATE INDEX task_events_tenant_time ON task_events (tenant_id, occurred_at);

CREATE TABLE decisions (
    event_id    text PRIMARY KEY,
    decision_id text NOT NULL,
    tenant_id   text NOT NULL,
    site_id     text,
    kind        text NOT NULL,                  -- ASSIGN, UNASSIGN, CHARGE, HOLD, RESUME, REROUTE
    robot_id    text NOT NULL,
    task_id     text,
    route       jsonb NOT NULL,
    eta         timestamptz,
    cost        double precision,
    reason      text,
    conflict_id text,
    planner     text,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX decisions_task ON decisions (tenant_id, task_id);
CREATE INDEX decisions_robot_time ON decisions (tenant_id, robot_id, occurred_at);

CREATE TABLE conflicts (
    event_id          text PRIMARY KEY,
    conflict_id       text NOT NULL,
    tenant_id         text NOT NULL,
    site_id           text,
    kind              text NOT NULL,            -- VERTEX, EDGE, FOLLOWING, NO_GO_ZONE, DEADLOCK
    robot_ids         text[] NOT NULL,
    node_id           text,
    lane_id           text,
    zone_id           text,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    resolution        text NOT NULL,            -- HOLD, REROUTE, NONE
    resolved_robot_id text,
    detail            text,
    occurred_at       timestamptz NOT NULL
);
CREATE INDEX conflicts_site_time ON conflicts (tenant_id, site_id, occurred_at);

CREATE TABLE alerts (
    event_id    text PRIMARY KEY,
    alert_id    text NOT NULL,
    tenant_id   text NOT NULL,
    site_id     text,
    kind        text NOT NULL,
    severity    text NOT NULL,
    subject_id  text NOT NULL,
    message     text NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX alerts_tenant_time ON alerts (tenant_id, occurred_at);

CREATE TABLE audit (
    event_id      text PRIMARY KEY,
    tenant_id     text NOT NULL,
    site_id       text,
    actor         text NOT NULL,
    role          text NOT NULL,
    action        text NOT NULL,                -- e.g. task.create
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    request_id    text,
    status_code   integer NOT NULL,
    details_json  text,
    occurred_at   timestamptz NOT NULL
);
CREATE INDEX audit_tenant_time ON audit (tenant_id, occurred_at);
