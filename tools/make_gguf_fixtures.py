"""Small GGUF files for tests/test_gguf.c, written by gguf-py's GGUFWriter, with
the keys, values and tensor infos each holds (as gguf-py's GGUFReader reads them
back) in <name>.gguf.json beside it.

    /work/venv/bin/python tools/make_gguf_fixtures.py     (needs: pip install gguf numpy)

Writes tests/fixtures/gguf/: all_types.gguf (every value type, arrays of each,
nested arrays, strings with NUL and non-UTF-8 bytes, extreme integers),
tensors.gguf (general.alignment 64, tensors of several ggml types and 1 to 4
dimensions), v2.gguf (all_types.gguf with version 2 in its header: versions 2
and 3 differ only in that 3 allows big-endian files), big_endian.gguf (a
big-endian file, to be refused) and ggml_types.json (gguf-py's block sizes of
every ggml type). Deterministic: the same bytes every run.

JSON: ints are decimal strings (int64 does not fit a double), floats C99 hex
float strings (exact: float.hex() of the stored value), strings hex bytes.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType as T, GGUFWriter, GGMLQuantizationType as Q

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "gguf")

INT_TYPES = {T.UINT8, T.INT8, T.UINT16, T.INT16, T.UINT32, T.INT32, T.UINT64, T.INT64}


def enc(vtype, v):
    if vtype in INT_TYPES:
        return str(int(v))
    if vtype in (T.FLOAT32, T.FLOAT64):
        return float(v).hex()
    if vtype == T.BOOL:
        return bool(v)
    if vtype == T.STRING:
        return bytes(v).hex()
    raise ValueError(vtype)


def field_value(f):
    """The JSON form of a GGUFReader field: type names and value (nested lists for arrays)."""
    types = [t for t in f.types]
    if types[0] != T.ARRAY:
        part = f.parts[f.data[0]]
        v = bytes(part) if types[0] == T.STRING else part[0]
        return {"type": types[0].name.lower(), "value": enc(types[0], v)}
    if types[1] != T.ARRAY:
        vals = []
        for di in f.data:
            part = f.parts[di]
            vals.append(enc(types[1], bytes(part) if types[1] == T.STRING else part[0]))
        return {"type": "array", "elem_type": types[1].name.lower(), "value": vals}
    return None  # nested: described from the values given to the writer instead


def nested_json(vtype, v):
    if isinstance(v, list):
        sub = T.get_type(v[0])
        return {"elem_type": sub.name.lower(), "value": [nested_json(sub, x) for x in v]}
    return enc(vtype, v.encode() if isinstance(v, str) else v)


def describe(path, nested):
    r = GGUFReader(path)
    kv = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        e = field_value(f)
        if e is None:
            e = {"type": "array", "elem_type": "array", "value": [nested_json(T.ARRAY, x) for x in nested[name]]}
        e["key"] = name
        kv.append(e)
    tensors = []
    for t in r.tensors:
        tensors.append({"name": t.name, "type": int(t.tensor_type), "dims": [str(int(d)) for d in t.shape],
                        "offset": str(int(t.data_offset - r.data_offset)), "size": str(int(t.n_bytes))})
    version = int(r.fields["GGUF.version"].parts[0][0])
    align = int(r.alignment)
    return {"version": version, "alignment": align, "data_offset": str(int(r.data_offset)), "kv": kv,
            "tensors": tensors, "size": os.path.getsize(path)}


def write(name, build, nested=None, patch=None):
    path = os.path.join(OUT, name)
    w = GGUFWriter(path, arch="lisatest")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if patch:
        data = bytearray(open(path, "rb").read())
        patch(data)
        open(path, "wb").write(bytes(data))
    desc = describe(path, nested or {})
    if patch:
        desc["version"] = int.from_bytes(open(path, "rb").read()[4:8], "little")
    with open(path + ".json", "w") as f:
        json.dump(desc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(path, os.path.getsize(path), "bytes")


NESTED = {
    "test.nested.ints": [[1, 2, 3], [4], [-5, 6]],
    "test.nested.strings": [["a", "bc"], ["", "d\u00e9f", "g"]],
    "test.nested.deep": [[[1, 2], [3]], [[4, 5, 6]]],
}


def all_types(w):
    w.add_key_value("test.u8", 255, T.UINT8)
    w.add_key_value("test.i8", -128, T.INT8)
    w.add_key_value("test.u16", 65535, T.UINT16)
    w.add_key_value("test.i16", -32768, T.INT16)
    w.add_key_value("test.u32", 4294967295, T.UINT32)
    w.add_key_value("test.i32", -2147483648, T.INT32)
    w.add_key_value("test.u64", 18446744073709551615, T.UINT64)
    w.add_key_value("test.u64_small", 9223372036854775807, T.UINT64)
    w.add_key_value("test.i64", -9223372036854775808, T.INT64)
    w.add_key_value("test.f32", 0.1, T.FLOAT32)
    w.add_key_value("test.f32_neg", -3.5e-20, T.FLOAT32)
    w.add_key_value("test.f64", 2.718281828459045, T.FLOAT64)
    w.add_key_value("test.true", True, T.BOOL)
    w.add_key_value("test.false", False, T.BOOL)
    w.add_key_value("test.string", "h\u00e9llo, \u4e16\u754c \U0001f600", T.STRING)
    w.add_key_value("test.string_nul", b"a\x00b\x00", T.STRING)
    w.add_key_value("test.string_bytes", b"\xff\xfe\x80 not utf-8", T.STRING)
    w.add_key_value("test.string_empty", "", T.STRING)
    w.add_key_value("test.arr.u8", [0, 1, 254, 255], T.ARRAY, T.UINT8)
    w.add_key_value("test.arr.i8", [-128, 0, 127], T.ARRAY, T.INT8)
    w.add_key_value("test.arr.u16", [0, 65535], T.ARRAY, T.UINT16)
    w.add_key_value("test.arr.i16", [-32768, 32767], T.ARRAY, T.INT16)
    w.add_key_value("test.arr.u32", [7, 4294967295], T.ARRAY, T.UINT32)
    w.add_key_value("test.arr.i32", [-2147483648, 2147483647, 0], T.ARRAY, T.INT32)
    w.add_key_value("test.arr.u64", [0, 9223372036854775808], T.ARRAY, T.UINT64)
    w.add_key_value("test.arr.i64", [-1, 9223372036854775807], T.ARRAY, T.INT64)
    w.add_key_value("test.arr.f32", [0.0, -0.0, 1.5, 3.4028234663852886e38, 1e-45], T.ARRAY, T.FLOAT32)
    w.add_key_value("test.arr.f64", [1e308, -1e-308, 0.1], T.ARRAY, T.FLOAT64)
    w.add_key_value("test.arr.bool", [True, False, True], T.ARRAY, T.BOOL)
    w.add_key_value("test.arr.string", ["", "one", "tw\u00f6", "\u2581three", "\x00"], T.ARRAY, T.STRING)
    for k, v in NESTED.items():
        w.add_key_value(k, v, T.ARRAY)
    w.add_key_value("test.after_nested", 42, T.UINT32)   # the walk resumes right after them


def tensors(w):
    w.add_custom_alignment(64)
    w.add_key_value("test.tensors", 5, T.UINT32)
    w.add_tensor("a.f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b.f16", np.arange(5, dtype=np.float16))
    rows = np.arange(2 * 34, dtype=np.uint8).reshape(2, 34)   # 2 rows of one Q8_0 block
    w.add_tensor("c.q8_0", rows, raw_dtype=Q.Q8_0)
    w.add_tensor("d.i32.4d", np.arange(24, dtype=np.int32).reshape(1, 2, 3, 4))
    q41 = np.zeros((3, 2 * 20), dtype=np.uint8)               # 3 rows of two Q4_1 blocks
    w.add_tensor("e.q4_1", q41, raw_dtype=Q.Q4_1)


def set_version_2(data):
    data[4:8] = (2).to_bytes(4, "little")


def main():
    os.makedirs(OUT, exist_ok=True)
    write("all_types.gguf", all_types, NESTED)
    write("tensors.gguf", tensors)
    write("v2.gguf", all_types, NESTED, patch=set_version_2)
    path = os.path.join(OUT, "big_endian.gguf")
    w = GGUFWriter(path, arch="lisatest", endianess=gguf.GGUFEndian.BIG)
    w.add_key_value("test.u32", 1, T.UINT32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(path, os.path.getsize(path), "bytes")
    sizes = {str(int(t)): {"name": t.name, "block": b, "bytes": s} for t, (b, s) in gguf.GGML_QUANT_SIZES.items()}
    with open(os.path.join(OUT, "ggml_types.json"), "w") as f:
        json.dump(sizes, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
