"""The tasks topology (key task_id): commands, idempotency, the state machine, dependencies, timeouts,
retries and cron schedules -> ``task.events``.

``build_inbox_feeds`` / ``build_tasks`` are the Quix builders; ``machine`` holds the pure task
transitions, ``deps`` the dependency protocol, ``cron`` the schedules, ``inputs`` the normalization of
every source record (including the RMF status table).
"""

from topologies.tasks.builder import (
    OUTPUT_TOPICS,
    STATE_SCHEDULE,
    STATE_TASK,
    OutputSerializer,
    TasksStep,
    build_inbox_feeds,
    build_tasks,
    output_key,
)
from topologies.tasks.config import OWNER, TasksConfig
from topologies.tasks.cron import next_fire, step_schedule, validate_schedule
from topologies.tasks.inputs import (
    RMF_DISPATCH_STATUS,
    RMF_STATUS,
    RMF_TASK_LABEL,
    from_command,
    from_decision,
    from_due_timer,
    from_rmf,
    from_schedule,
    from_telemetry,
    inbox_key,
)
from topologies.tasks.machine import step
from topologies.tasks.records import (
    ACTIVE,
    EVENTS,
    INBOX,
    RUNNING,
    STATES,
    TERMINAL,
    TIMERS,
    Output,
    cron_task_id,
    det_uuid7,
    task_id_for,
)

__all__ = [
    "ACTIVE",
    "EVENTS",
    "INBOX",
    "OUTPUT_TOPICS",
    "OWNER",
    "RMF_DISPATCH_STATUS",
    "RMF_STATUS",
    "RMF_TASK_LABEL",
    "RUNNING",
    "STATES",
    "STATE_SCHEDULE",
    "STATE_TASK",
    "TERMINAL",
    "TIMERS",
    "Output",
    "OutputSerializer",
    "TasksConfig",
    "TasksStep",
    "build_inbox_feeds",
    "build_tasks",
    "cron_task_id",
    "det_uuid7",
    "from_command",
    "from_decision",
    "from_due_timer",
    "from_rmf",
    "from_schedule",
    "from_telemetry",
    "inbox_key",
    "next_fire",
    "output_key",
    "step",
    "step_schedule",
    "task_id_for",
    "validate_schedule",
]
