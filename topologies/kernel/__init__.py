"""The one way every topology plugs into Quix Streams.

A topology is a pure ``step(state, kind, event, now_ms) -> list[Output]`` (:mod:`.step`) over one key's
sub-key state (:mod:`.state`), wired with :func:`build_step` over its direct inputs and its inbox
(:mod:`.inbox`), each input tagged with its kind at wiring time. :mod:`.testing` runs a step on Quix's
memory and RocksDB stores without a broker. Timers are in :mod:`topologies.timers`.
"""

from topologies.kernel.inbox import (
    Envelope,
    HomePartition,
    decode_envelope,
    encode_envelope,
    murmur2,
    murmur2_partition,
)
from topologies.kernel.output import Output
from topologies.kernel.state import GENERATION, KeyState, ModelCache, StateLike
from topologies.kernel.step import (
    Decode,
    DecodeWithHeaders,
    Forward,
    Route,
    StateView,
    Step,
    StepAdapter,
    annotate,
    build_step,
    feed,
    feeds,
    merge,
    rekey,
    run_step,
)

__all__ = [
    "GENERATION",
    "Decode",
    "DecodeWithHeaders",
    "Envelope",
    "Forward",
    "HomePartition",
    "KeyState",
    "ModelCache",
    "Output",
    "Route",
    "StateLike",
    "StateView",
    "Step",
    "StepAdapter",
    "annotate",
    "build_step",
    "decode_envelope",
    "encode_envelope",
    "feed",
    "feeds",
    "merge",
    "murmur2",
    "murmur2_partition",
    "rekey",
    "run_step",
]
