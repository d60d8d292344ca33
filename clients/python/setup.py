"""Generates the gRPC modules from Quanyu's proto files into the build, so that they are never
committed and always match the contract they were built from."""

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def proto_root() -> Path:
    here = Path(__file__).resolve().parent
    return Path(os.environ.get("QUANYU_PROTO_DIR", here.parent.parent / "proto")).resolve()


class BuildWithProtos(build_py):
    def run(self) -> None:
        super().run()
        from grpc_tools import protoc
        import grpc_tools

        root = proto_root()
        protos = sorted(str(path.relative_to(root)) for path in root.rglob("*.proto"))
        if not protos:
            raise SystemExit(f"no .proto files under {root} (set QUANYU_PROTO_DIR)")
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        out = Path(self.build_lib)
        arguments = [
            "protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
        if protoc.main(arguments) != 0:
            raise SystemExit("protoc failed on " + " ".join(protos))
        # Generated modules import each other as quanyu.<service>.v1: make those packages.
        for directory in (out / "quanyu").rglob("*"):
            if directory.is_dir():
                (directory / "__init__.py").touch()
        (out / "quanyu" / "__init__.py").touch()


setup(cmdclass={"build_py": BuildWithProtos})
