"""Generate the Python gRPC code for every proto under ``protos/``.

Output goes to the ``iot/`` package at the repository root (gitignored):
``--python_out``, ``--pyi_out`` and ``--grpc_python_out`` from grpcio-tools,
and ``iot/descriptors.binpb``, a ``FileDescriptorSet`` with source info from
which the gateway reads the proto comments (so serving never runs protoc).
Run ``python -m tools.gen_protos``; generated files are never edited by hand.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import google.api
from grpc_tools import protoc

from gateway.comments import DESCRIPTORS

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
OUT_DIR = ROOT


def include_dirs() -> list[Path]:
    """Proto include paths: ours, protobuf's well-known types, googleapis' annotations."""
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    googleapis = Path(google.api.__path__[0]).parent.parent
    return [PROTO_DIR, well_known, googleapis]


def generate() -> list[Path]:
    """Compile every proto; answers the list of proto files compiled."""
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    args = ["grpc_tools.protoc", *(f"-I{path}" for path in include_dirs())]
    args += [f"--python_out={OUT_DIR}", f"--pyi_out={OUT_DIR}", f"--grpc_python_out={OUT_DIR}"]
    (OUT_DIR / "iot").mkdir(exist_ok=True)
    args += ["--include_source_info", f"--descriptor_set_out={OUT_DIR / 'iot' / DESCRIPTORS}"]
    args += [str(path.relative_to(PROTO_DIR)) for path in protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Packages for every generated directory so that imports and setuptools find them.
    for directory in {p.parent for p in (OUT_DIR / "iot").rglob("*_pb2.py")}:
        while directory != OUT_DIR:
            (directory / "__init__.py").touch()
            directory = directory.parent
    return protos


def main() -> None:
    """Command-line entry: generate and report."""
    protos = generate()
    print(f"generated Python code for {len(protos)} protos into {OUT_DIR / 'iot'}", file=sys.stderr)


if __name__ == "__main__":
    main()
