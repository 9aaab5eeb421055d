"""ggml tensor data and gguf-py's readings of it, for tests/test_quant.c.

    /work/venv/bin/python tools/make_quant_fixtures.py     (needs: pip install gguf numpy)

Writes tests/fixtures/quant/, for each of F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0
Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K:
  <T>.bin   raw ggml blocks
  <T>.f32   gguf.quants.dequantize of them: float32, little endian
and, for F16 BF16 Q8_0 (with F32, whose quantize is a copy, the types
lisa_ggml_quantize writes):
  <T>.in.f32  float32 inputs, little endian
  <T>.q       gguf.quants.quantize of them (raw blocks)

The blocks: random normal values quantized by gguf-py where it can quantize
the type (Q8_0 Q4_0 Q4_1 Q5_0 Q5_1), random raw bytes with finite f16 scales
(random bits, and realistic magnitudes), and edge blocks: all zero, every
quant at its largest and at its smallest, negative and subnormal scales.
Scales are never NaN or infinite (a NaN's payload is not part of the
contract). Deterministic: the same bytes every run.

    /work/venv/bin/python tools/make_quant_fixtures.py --real PATH.gguf

writes tests/fixtures/quant/smollm2.txt instead: for each tensor of the GGUF
file (the real SmolLM2-135M-Instruct Q4_1 GGUF), its name and a hash of
gguf-py's dequantization (weighted_hash below; test_quant.c computes the same).
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant")

rng = np.random.default_rng(20260512)

# Where the f16 fields of each block type are: byte offsets (ggml-common.h).
F16_FIELDS = {
    Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
CAN_QUANTIZE = [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]


def block_bytes(t):
    return gguf.GGML_QUANT_SIZES[t][1]


def finite_f16_bits(n):
    """Random f16 bit patterns with every exponent but the NaN/inf one."""
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint32)
    bad = (h & 0x7C00) == 0x7C00
    h[bad] &= ~np.uint32(0x4000)   # exponent 31 becomes 15
    return h.astype(np.uint16)


def realistic_f16_bits(n):
    return (rng.normal(size=n) * 10.0 ** rng.uniform(-4, 0, size=n)).astype(np.float16).view(np.uint16)


def set_f16(blocks, t, values):
    """Sets every f16 field of each block (rows) to values[:, field index]."""
    for k, off in enumerate(F16_FIELDS[t]):
        v = np.asarray(values)[:, k].astype(np.uint16)
        blocks[:, off] = (v & 0xFF).astype(np.uint8)
        blocks[:, off + 1] = (v >> 8).astype(np.uint8)


def raw_blocks(t, n, f16_bits):
    b = rng.integers(0, 256, size=(n, block_bytes(t)), dtype=np.uint8)
    set_f16(b, t, np.stack([f16_bits(n) for _ in F16_FIELDS[t]], axis=1))
    return b


def edge_blocks(t):
    nf = len(F16_FIELDS[t])
    rows = []
    # all zero: d = 0 (and m = 0)
    rows.append((0x00, [0x0000] * nf))
    # largest quants (and scales), scales 65504 and -65504
    rows.append((0xFF, [0x7BFF, 0xFBFF][:nf]))
    # largest quants, negative d, positive dmin / m
    rows.append((0xFF, [0xBC00, 0x3C00][:nf]))
    # smallest quants, negative scales
    rows.append((0x00, [0xC000, 0xB800][:nf]))
    # alternating bits, subnormal scales (the smallest, and the largest subnormal)
    rows.append((0xAA, [0x0001, 0x83FF][:nf]))
    rows.append((0x55, [0x8001, 0x03FF][:nf]))
    # negative zero scales
    rows.append((0x0F, [0x8000, 0x8000][:nf]))
    b = np.empty((len(rows), block_bytes(t)), dtype=np.uint8)
    for i, (fill, _) in enumerate(rows):
        b[i, :] = fill
    set_f16(b, t, np.array([r[1] for r in rows], dtype=np.uint32))
    return b


def quantized_blocks(t):
    x = [rng.normal(size=(4, 32)) * s for s in (1.0, 0.02, 300.0)]
    x.append(rng.uniform(0.5, 2.0, size=(2, 32)))      # all positive
    x.append(-rng.uniform(0.5, 2.0, size=(2, 32)))     # all negative
    x = np.concatenate(x).astype(np.float32)
    return np.frombuffer(quantize(x, t).tobytes(), dtype=np.uint8).reshape(len(x), block_bytes(t))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def write_dequant(t, raw):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    y = dequantize(raw, t)
    assert y.dtype == np.float32
    write(t.name + ".bin", raw.tobytes())
    write(t.name + ".f32", y.astype("<f4").tobytes())
    return y.size


def bits_f32(u):
    return np.asarray(u, dtype=np.uint32).view(np.float32)


def float_inputs():
    """Values for the float conversions: specials, rounding ties, range ends."""
    v = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 65504.0, 65519.996, 65520.0, -65520.0, 1e10, 3.4e38,
         2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -26, 1e-45,
         1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -24]
    v = list(np.array(v, dtype=np.float32).view(np.uint32))
    v += [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00000, 0x7F802000, 0x7F801FFF, 0x7FFFFFFF,
          0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F817FFF,
          0x00000001, 0x00008000, 0x00018000, 0x807FFFFF, 0x38800000, 0x387FFFFF, 0x387FF000, 0x33000000,
          0x33000001, 0x477FEFFF, 0x477FF000]
    # halfway between neighbouring f16 values in every binade (and one ulp either side)
    for e in range(-24, 16):
        base = np.float32(2.0 ** e)
        step = np.float32(2.0 ** (max(e, -14) - 10))
        for k in (1, 2, 3, 513, 1023):
            mid = np.float32(base + step * (k + np.float32(0.5)))
            u = int(mid.view(np.uint32))
            v += [u, u - 1, u + 1, u | 0x80000000]
    # random bit patterns: every exponent, then the range f16 covers
    v += list(rng.integers(0, 1 << 32, size=256, dtype=np.uint64).astype(np.uint32))
    e = rng.integers(97, 144, size=512, dtype=np.uint32)
    m = rng.integers(0, 1 << 23, size=512, dtype=np.uint32)
    s = rng.integers(0, 2, size=512, dtype=np.uint32)
    v += list(s << 31 | e << 23 | m)
    return bits_f32(np.array(v, dtype=np.uint32))


def q8_0_inputs():
    blocks = [rng.normal(size=32) * s for s in (1.0, 1e-3, 1e4, 1e-20, 3e-5)]
    ties = np.arange(32, dtype=np.float64) - 15.5      # -15.5 .. 15.5, with 127 as the max: d = 1
    ties[0] = 127.0
    blocks.append(ties)
    blocks.append(-ties)
    blocks.append(ties * 2.0 ** -10)                    # same ties, d = 2^-10
    blocks.append(np.zeros(32))
    neg = rng.uniform(-1, 1, size=32)
    neg[7] = -5.0                                       # largest magnitude is negative
    blocks.append(neg)
    blocks.append(np.full(32, -3.25))
    blocks.append(np.linspace(-1, 1, 32))
    blocks.append(rng.normal(size=32) * 1e6)            # d past f16's range: inf
    blocks.append(rng.normal(size=32) * 3e37)
    blocks.append(rng.normal(size=32) * 1e-38)          # 1 / d overflows
    blocks.append(rng.normal(size=32) * 1e-7)           # d a subnormal f16, or 0
    one = np.zeros(32)
    one[31] = 1e-3
    blocks.append(one)
    inf = rng.normal(size=32)
    inf[3] = np.inf
    blocks.append(inf)
    nan = rng.normal(size=32)
    nan[9] = np.nan
    blocks.append(nan)
    x = np.array(blocks, dtype=np.float32)
    return x.reshape(-1)


def write_quant(t, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        q = quantize(x, t)
    write(t.name + ".in.f32", x.astype("<f4").tobytes())
    write(t.name + ".q", np.ascontiguousarray(q).tobytes())


HASH_MUL, HASH_ADD, HASH_CHUNK = np.uint64(0x9E3779B97F4A7C15), np.uint64(0x632BE59BD9B4E019), 1 << 22


def weighted_hash(y):
    """sum over i of bits(y[i]) * (i * HASH_MUL + HASH_ADD | 1), mod 2^64: odd
    weights, so any change of one float changes it, and different weights
    for each position, so moved floats do too."""
    bits = np.ascontiguousarray(y, dtype="<f4").reshape(-1).view(np.uint32)
    h = 0
    for start in range(0, bits.size, HASH_CHUNK):
        b = bits[start:start + HASH_CHUNK].astype(np.uint64)
        w = np.arange(start, start + b.size, dtype=np.uint64) * HASH_MUL + HASH_ADD | np.uint64(1)
        h = (h + int(np.sum(b * w, dtype=np.uint64))) % (1 << 64)
    return h


def write_real(path):
    from gguf import GGUFReader
    reader = GGUFReader(path)
    lines = []
    for t in reader.tensors:
        y = dequantize(t.data, t.tensor_type)
        assert y.size == t.n_elements, t.name
        lines.append(f"{t.name} {weighted_hash(y):016x}\n")
    with open(os.path.join(OUT, "smollm2.txt"), "w") as f:
        f.writelines(lines)
    print(f"{OUT}/smollm2.txt: {len(lines)} tensors", file=sys.stderr)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--real":
        write_real(sys.argv[2])
        return
    os.makedirs(OUT, exist_ok=True)
    total = 0
    # F32: bit patterns as they are (NaNs with payloads included).
    total += write_dequant(Q.F32, float_inputs()[:600].view(np.uint8))
    # F16 and BF16: every 37th bit pattern, and the ends of each class.
    h = list(range(0, 1 << 16, 37)) + list(range(0, 64)) + list(range(0x3F8, 0x408)) + \
        list(range(0x7BF0, 0x7C10)) + list(range(0x7DF0, 0x7E10)) + list(range(0xFBF0, 0x10000, 3))
    h = np.array(h, dtype=np.uint16)
    total += write_dequant(Q.F16, h.view(np.uint8))
    total += write_dequant(Q.BF16, h.view(np.uint8))
    for t in [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        k = t.name.endswith("_K")
        parts = [edge_blocks(t), raw_blocks(t, 4 if k else 16, finite_f16_bits),
                 raw_blocks(t, 4 if k else 16, realistic_f16_bits)]
        if t in CAN_QUANTIZE:
            parts.insert(0, quantized_blocks(t))
        total += write_dequant(t, np.concatenate(parts))
    x = float_inputs()
    write_quant(Q.F16, x)
    write_quant(Q.BF16, x)
    write_quant(Q.Q8_0, q8_0_inputs())
    size = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{OUT}: {len(os.listdir(OUT))} files, {size} bytes, {total} dequantized values", file=sys.stderr)


if __name__ == "__main__":
    main()
