"""Size and time limits of the records clients send, enforced where they enter and where they are applied.

The gateway refuses a request past these (413/422, naming the field) and the topology that applies the
record dead-letters one that got past it anyway (another producer, an older gateway), with the reason.
Both read them from here, so they cannot disagree.
"""

from __future__ import annotations

__all__ = [
    "FUTURE_SKEW_MS",
    "TASK_COMMAND_MAX_BYTES",
    "TASK_ID_MAX",
    "TASK_LABELS_MAX",
    "TASK_LABEL_KEY_MAX",
    "TASK_LABEL_VALUE_MAX",
    "TASK_LIST_ITEM_MAX",
    "TASK_LIST_MAX",
    "TASK_PAYLOAD_MAX_BYTES",
    "TASK_TEXT_MAX",
]

#: A record stamped further than this ahead of the time it was produced (its Kafka timestamp) is refused:
#: clocks disagree a little, never by a day.
FUTURE_SKEW_MS = 5_000

#: A TaskCommand's encoded record (Avro), at most.
TASK_COMMAND_MAX_BYTES = 64 * 1024
#: A task spec's opaque ``payload_json``, at most (UTF-8 bytes).
TASK_PAYLOAD_MAX_BYTES = 32 * 1024
#: Ids (task, node, fleet, robot, idempotency key), at most (characters).
TASK_ID_MAX = 128
#: Free text (reason, requested_by, category), at most (characters).
TASK_TEXT_MAX = 500
#: Labels of a spec: entries, key and value length.
TASK_LABELS_MAX = 32
TASK_LABEL_KEY_MAX = 64
TASK_LABEL_VALUE_MAX = 256
#: Lists of a spec (required_capabilities, depends_on): entries and entry length.
TASK_LIST_MAX = 64
TASK_LIST_ITEM_MAX = 128
