"""The .pyi stubs of the compiled modules say what the modules really have."""

import ast
import re
from pathlib import Path

import pytest

import ledkde
from ledkde import _core, _device

STUBS = Path(ledkde.__file__).parent


def stub_functions(name):
    tree = ast.parse((STUBS / f"{name}.pyi").read_text())
    funcs = {n.name: [a.arg for a in n.args.args] for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    return funcs, classes


def runtime_args(fn):
    """Argument names from pybind11's signature line in the docstring (the first overload's)."""
    lines = [ln for ln in fn.__doc__.strip().splitlines() if "(" in ln and "*args, **kwargs" not in ln]
    sig = re.sub(r"^1\. ", "", lines[0])
    inside = sig[sig.index("(") + 1:sig.rindex(") ->") if ") ->" in sig else sig.rindex(")")]
    return [m.group(1) for m in re.finditer(r"(?:^|, )(\w+): ", inside)]


@pytest.mark.parametrize("name", ["_core", "_cuda"])
def test_stubs_match_the_compiled_module(name):
    module = _core if name == "_core" else _device.cuda_module()
    if module is None:
        pytest.skip("this build has no CUDA module")
    funcs, classes = stub_functions(name)
    for fname, args in funcs.items():
        assert hasattr(module, fname), f"{name}.pyi declares {fname}, which the module lacks"
        assert runtime_args(getattr(module, fname)) == args, fname
    for cname in classes:
        assert hasattr(module, cname), f"{name}.pyi declares class {cname}, which the module lacks"
    public = {n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))
              and not isinstance(getattr(module, n), type)}
    assert public <= set(funcs), f"functions without a stub: {sorted(public - set(funcs))}"
