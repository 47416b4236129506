"""The Python binding's constants and struct layouts against the C headers (CTest: python.capi).

bindings/python/terse/_capi.py copies the C enums, field_mask bits and params structs by hand
(ctypes has no way to read a header). This check makes the header the one source: every
enumerator and field bit of the groups below must exist in _capi.py with the header's value,
_capi.py must define no name of those groups that the header lacks, and every ctypes struct
must have the C struct's members, in order, at the C offsets and sizes that capi_layout
(compiled from the same headers by the same compiler) prints.

usage: check_capi.py INCLUDE_DIR CAPI_PY LAYOUT_EXE   (TERSE_LIBRARY: the libterse.so to load)
"""
import importlib.util
import re
import subprocess
import sys

# Header name prefix -> _capi.py name prefix is TERSE_X -> X. The groups mirrored by _capi.py;
# an enumerator ending in _LAST is a bound, not a value, and is not mirrored.
GROUPS = ("TERSE_DTYPE_", "TERSE_OP_", "TERSE_OK", "TERSE_INPROGRESS", "TERSE_ERR_",
          "TERSE_COMM_PARAM_FIELD_", "TERSE_COMPRESSOR_", "TERSE_CALLREDUCE_FIELD_",
          "TERSE_EF_MODE_", "TERSE_EF_FIELD_", "TERSE_MODEL_FIELD_", "TERSE_UNDEFINED",
          "TERSE_COMPRESSED_ALGO_", "TERSE_HIERARCHY_")

# ctypes class -> C typedef; ctypes member names differ from C only where C's is a keyword.
STRUCTS = {"Oob": "terse_oob_t", "CommParams": "terse_comm_params_t",
           "Compressor": "terse_compressor_t", "CTensor": "terse_ctensor_t",
           "CallreduceParams": "terse_callreduce_params_t", "EfParams": "terse_ef_params_t",
           "ModelTensor": "terse_model_tensor_t", "ModelParams": "terse_model_params_t"}
RENAMED = {("CTensor", "input"): "in"}


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def c_value(expr):
    """The value of a constant expression as the headers write them: -10, (-1), 1u << 3,
    (1ull << 2)."""
    e = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip())
    if not re.fullmatch(r"[\s0-9a-fA-FxX()<|+\-]*", e):
        raise ValueError("cannot evaluate %r" % expr)
    return int(eval(e, {"__builtins__": {}}))  # digits and operators only (checked above)


def header_constants(include_dir, headers):
    """Every #define and enumerator of the mirrored groups: {name: value}."""
    out = {}
    for h in headers:
        with open("%s/terse/%s" % (include_dir, h)) as f:
            text = strip_comments(f.read())
        for name, expr in re.findall(r"^[ \t]*#define[ \t]+(TERSE_\w+)[ \t]+(\S.*?)[ \t]*$", text, re.M):
            out[name] = expr
        for body in re.findall(r"\benum\b[^{;]*\{(.*?)\}", text, re.S):
            nxt = 0
            for item in body.split(","):
                item = item.strip()
                if not item:
                    continue
                name, _, expr = item.partition("=")
                name = name.strip()
                v = c_value(expr) if expr else nxt
                out[name] = v
                nxt = v + 1
    mirrored = {}
    for name, v in out.items():
        if name.endswith("_LAST") or not name.startswith(GROUPS):
            continue
        mirrored[name] = v if isinstance(v, int) else c_value(v)
    return mirrored


def header_members(include_dir, headers):
    """{typedef name: [member names in order]} of the structs in STRUCTS."""
    out = {}
    for h in headers:
        with open("%s/terse/%s" % (include_dir, h)) as f:
            text = strip_comments(f.read())
        for body, name in re.findall(r"typedef\s+struct\s+\w*\s*\{(.*?)\}\s*(\w+)\s*;", text,
                                     re.S):
            members = []
            for decl in body.split(";"):
                m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl.strip())
                if m:
                    members.append(m.group(1))
            out[name] = members
    return out


def main(include_dir, capi_py, layout_exe):
    errors = []
    headers = ("status.h", "types.h", "comm.h", "compress.h", "compressed.h", "ef.h",
               "model.h")
    spec = importlib.util.spec_from_file_location("terse_capi_under_check", capi_py)
    capi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(capi)

    consts = header_constants(include_dir, headers)
    py_prefixes = tuple(g[len("TERSE_"):] for g in GROUPS)
    for name, v in sorted(consts.items()):
        py = name[len("TERSE_"):]
        if not hasattr(capi, py):
            errors.append("%s = %d is missing from _capi.py (as %s)" % (name, v, py))
        elif getattr(capi, py) != v:
            errors.append("_capi.%s = %r, but %s = %d" % (py, getattr(capi, py), name, v))
    for py in sorted(n for n in vars(capi) if n.startswith(py_prefixes) and n.isupper()):
        if "TERSE_" + py not in consts:
            errors.append("_capi.%s has no TERSE_%s in include/terse/" % (py, py))

    layout = {}
    members = header_members(include_dir, headers)
    text = subprocess.run([layout_exe], check=True, capture_output=True, text=True).stdout
    for line in text.splitlines():
        w = line.split()
        if w[0] == "struct":
            layout[w[1]] = {"size": int(w[2]), "fields": []}
        else:
            layout[w[1]]["fields"].append((w[2], int(w[3]), int(w[4])))
    for cls, ctype in STRUCTS.items():
        st = getattr(capi, cls)
        want = layout.get(ctype)
        if want is None:
            errors.append("capi_layout prints no %s" % ctype)
            continue
        printed = [f[0] for f in want["fields"]]
        if printed != members.get(ctype):
            errors.append("capi_layout.c lists %s members %s, the header has %s"
                          % (ctype, printed, members.get(ctype)))
        py_fields = [RENAMED.get((cls, f[0]), f[0]) for f in st._fields_]
        if py_fields != members.get(ctype):
            errors.append("_capi.%s members %s, but %s has %s"
                          % (cls, py_fields, ctype, members.get(ctype)))
        if capi.ctypes.sizeof(st) != want["size"]:
            errors.append("sizeof(_capi.%s) = %d, sizeof(%s) = %d"
                          % (cls, capi.ctypes.sizeof(st), ctype, want["size"]))
        for f in st._fields_:
            cname = RENAMED.get((cls, f[0]), f[0])
            got = getattr(st, f[0])
            for name, off, size in want["fields"]:
                if name == cname and (got.offset, got.size) != (off, size):
                    errors.append("_capi.%s.%s at offset %d size %d, %s.%s at %d size %d"
                                  % (cls, f[0], got.offset, got.size, ctype, cname, off, size))

    for e in errors:
        print("check_capi: " + e)
    if not errors:
        print("check_capi: %d constants and %d structs agree with include/terse/"
              % (len(consts), len(STRUCTS)))
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
