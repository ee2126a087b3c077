"""Generated gRPC/protobuf modules of ``planner.proto``.

Regenerate from the repository root with::

    .venv/bin/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
        schemas/proto/planner.proto
    .venv/bin/ruff check --fix --unsafe-fixes schemas/proto/planner_pb2.pyi
    .venv/bin/ruff format schemas/proto/planner_pb2.pyi

(the ``.py`` files are excluded from ruff; the ``.pyi`` stub, which mypy reads, is not, hence the fix.)
"""
