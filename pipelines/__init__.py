"""fleetstream pipelines: the deployables, their settings, the CLI, the simulator and the benchmarks."""

import warnings

# quixstreams imports authlib's httpx integration, which warns on import; it is not ours to fix.
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
