"""What hekapy's Lua modules get from Python: the `hyperloglog` and `bloom_filter`
objects (64-bit hashing, which Lua 5.1's doubles cannot do) and cjson's output limit.

The Lua side (collector/sandbox/lua/hyperloglog.lua, bloom_filter.lua) keeps each
object as an opaque Lua value holding one of these Python objects and calls the
functions `install` gives it.

- HyperLogLog is Redis's dense HyperLogLog, which Heka's module was: 16384 six-bit
  registers indexed by MurmurHash64A (seed 0xadc83b19), serialised as Redis's 12304-byte
  "HYLL" string (16-byte header with a cached cardinality, then the registers packed
  little-endian), so a value preserved by Heka restores here and the other way round.
- BloomFilter sizes itself as Heka's did (m = ceil(-n ln p / ln² 2) bits, k = round(m/n
  ln 2) hashes) but hashes with BLAKE2b (double hashing); its serialised form carries a
  "hekapy-bloom1" tag, so bits written by Heka's filter, which hashed otherwise, are
  refused rather than read as wrong answers.
A number key hashes as its 8-byte little-endian IEEE-754 double, a string as its bytes.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

from hekapy.collector.sandbox.host import ApiError, LuaSandbox

_M64 = (1 << 64) - 1
_MURMUR_M = 0xC6A4A7935BD1E995
_HLL_SEED = 0xADC83B19
_HLL_P = 14
_HLL_REGISTERS = 1 << _HLL_P
_HLL_DENSE = _HLL_REGISTERS * 6 // 8
_HLL_SIZE = 16 + _HLL_DENSE
_HLL_ALPHA = 0.7213 / (1 + 1.079 / _HLL_REGISTERS)
_INVERSE_POWERS = [2.0 ** -r for r in range(64)]


def key_bytes(key: Any, fname: str) -> bytes:
    """A Lua key (string or number) as the bytes that are hashed."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return struct.pack("<d", float(key))
    raise ApiError(f"bad argument #2 to '{fname}' (must be a string or number)")


def murmur64a(data: bytes, seed: int) -> int:
    """MurmurHash64A (Austin Appleby's 64-bit MurmurHash2), little-endian blocks."""
    m = _MURMUR_M
    h = (seed ^ (len(data) * m)) & _M64
    whole = len(data) & ~7
    for (k,) in struct.iter_unpack("<Q", data[:whole]):
        k = (k * m) & _M64
        k ^= k >> 47
        k = (k * m) & _M64
        h ^= k
        h = (h * m) & _M64
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * m) & _M64
    h ^= h >> 47
    h = (h * m) & _M64
    h ^= h >> 47
    return h


class HyperLogLog:
    """Redis's dense HyperLogLog (P = 14)."""

    def __init__(self) -> None:
        self.registers = bytearray(_HLL_REGISTERS)
        self.cached: int | None = 0

    def add(self, data: bytes) -> bool:
        h = murmur64a(data, _HLL_SEED)
        index = h & (_HLL_REGISTERS - 1)
        rest = (h >> _HLL_P) | (1 << (64 - _HLL_P))
        rank = (rest & -rest).bit_length()  # trailing zeros + 1
        if rank > self.registers[index]:
            self.registers[index] = rank
            self.cached = None
            return True
        return False

    def merge(self, other: HyperLogLog) -> None:
        regs = self.registers
        for i, r in enumerate(other.registers):
            if r > regs[i]:
                regs[i] = r
        self.cached = None

    def count(self) -> int:
        if self.cached is None:
            self.cached = estimate(self.registers)
        return self.cached

    def clear(self) -> None:
        self.registers = bytearray(_HLL_REGISTERS)
        self.cached = 0

    def to_bytes(self) -> bytes:
        """Redis's "HYLL" string: magic, encoding 0 (dense), 3 unused bytes, the
        cardinality cache (little-endian, top bit set when stale), the registers."""
        cache = bytearray((self.cached or 0).to_bytes(8, "little"))
        if self.cached is None:
            cache[7] |= 0x80
        regs = self.registers
        dense = bytearray(_HLL_DENSE)
        for g in range(_HLL_REGISTERS // 4):  # 4 registers → 3 bytes
            i = 4 * g
            v = regs[i] | regs[i + 1] << 6 | regs[i + 2] << 12 | regs[i + 3] << 18
            dense[3 * g:3 * g + 3] = v.to_bytes(3, "little")
        return b"HYLL\x00\x00\x00\x00" + bytes(cache) + bytes(dense)

    def from_bytes(self, data: bytes) -> None:
        if len(data) != _HLL_SIZE:
            raise ApiError(f"fromstring() bytes found: {len(data)}, expected {_HLL_SIZE}")
        if data[:4] != b"HYLL" or data[4] != 0:
            raise ApiError("fromstring() not a dense HYLL string")
        regs = bytearray(_HLL_REGISTERS)
        dense = data[16:]
        for g in range(_HLL_REGISTERS // 4):
            v = int.from_bytes(dense[3 * g:3 * g + 3], "little")
            i = 4 * g
            regs[i], regs[i + 1], regs[i + 2], regs[i + 3] = (
                v & 63, v >> 6 & 63, v >> 12 & 63, v >> 18 & 63)
        self.registers = regs
        cache = bytearray(data[8:16])
        self.cached = None if cache[7] & 0x80 else int.from_bytes(cache, "little")


def estimate(registers: bytearray) -> int:
    """The cardinality estimate of Redis's original HyperLogLog (2014): the raw
    harmonic-mean estimate, linear counting while it is small, and the empirical bias
    correction below 72000 (for P = 14)."""
    m = _HLL_REGISTERS
    inverse = _INVERSE_POWERS
    total = 0.0
    zeros = 0
    for r in registers:
        if r == 0:
            zeros += 1
        total += inverse[r]
    e = _HLL_ALPHA * m * m / total
    if e < m * 2.5 and zeros:
        e = m * math.log(m / zeros)
    elif e < 72000:
        bias = (5.9119e-18 * e ** 4 - 1.4253e-12 * e ** 3 + 1.2940e-7 * e ** 2
                - 5.2921e-3 * e + 83.3216)
        e -= e * (bias / 100)
    return int(e)


_BLOOM_TAG = b"hekapy-bloom1"


class BloomFilter:
    def __init__(self, items: int, probability: float) -> None:
        self.items = items
        self.probability = probability
        self.bits = max(8, math.ceil(-items * math.log(probability) / math.log(2) ** 2))
        self.hashes = max(1, round(self.bits / items * math.log(2)))
        self.array = bytearray((self.bits + 7) // 8)
        self.added = 0

    def _positions(self, data: bytes) -> list[int]:
        d = hashlib.blake2b(data, digest_size=16).digest()
        h1 = int.from_bytes(d[:8], "little")
        h2 = int.from_bytes(d[8:], "little") | 1
        return [(h1 + i * h2) % self.bits for i in range(self.hashes)]

    def query(self, data: bytes) -> bool:
        a = self.array
        return all(a[p >> 3] >> (p & 7) & 1 for p in self._positions(data))

    def add(self, data: bytes) -> bool:
        a = self.array
        new = False
        for p in self._positions(data):
            bit = 1 << (p & 7)
            if not a[p >> 3] & bit:
                a[p >> 3] |= bit
                new = True
        if new:
            self.added += 1
        return new

    def clear(self) -> None:
        self.array = bytearray(len(self.array))
        self.added = 0

    def to_bytes(self) -> bytes:
        return _BLOOM_TAG + self.added.to_bytes(8, "little") + bytes(self.array)

    def from_bytes(self, data: bytes) -> None:
        size = len(_BLOOM_TAG) + 8 + len(self.array)
        if not data.startswith(_BLOOM_TAG):
            raise ApiError("fromstring() not a bloom filter saved by hekapy")
        if len(data) != size:
            raise ApiError(f"fromstring() bytes found: {len(data)}, expected {size}")
        n = len(_BLOOM_TAG)
        self.added = int.from_bytes(data[n:n + 8], "little")
        self.array = bytearray(data[n + 8:])


def _arity(args: tuple[Any, ...], n: int, fname: str, first: int = 2) -> None:
    """`first`: the number of the first argument (2 for a method: self is #1)."""
    if len(args) != n:
        raise ApiError(f"bad argument #{min(len(args), n) + first} to '{fname}' "
                       "(incorrect number of arguments)")


def _string_arg(v: Any, fname: str) -> bytes:
    if not isinstance(v, bytes):
        raise ApiError(f"bad argument #2 to '{fname}' (string expected, got "
                       f"{_lua_type(v)})")
    return v


def _lua_type(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return "string" if isinstance(v, bytes) else "table"


def _hll_functions(memory_limit: int) -> dict[str, Any]:
    def new(*args: Any) -> HyperLogLog:
        _arity(args, 0, "new", 1)
        if memory_limit and _HLL_REGISTERS > memory_limit:
            raise ApiError("hyperloglog.new() needs more memory than the memory_limit")
        return HyperLogLog()

    def add(h: HyperLogLog, *args: Any) -> bool:
        _arity(args, 1, "add")
        return h.add(key_bytes(args[0], "add"))

    def count(*hlls: HyperLogLog) -> int:
        if len(hlls) == 1:
            return hlls[0].count()
        merged = HyperLogLog()
        for h in hlls:
            merged.merge(h)
        return merged.count()

    def merge(h: HyperLogLog, other: HyperLogLog) -> None:
        h.merge(other)

    def clear(h: HyperLogLog, *args: Any) -> None:
        _arity(args, 0, "clear")
        h.clear()

    def tostring(h: HyperLogLog) -> bytes:
        return h.to_bytes()

    def fromstring(h: HyperLogLog, *args: Any) -> None:
        _arity(args, 1, "fromstring")
        h.from_bytes(_string_arg(args[0], "fromstring"))

    return {"new": new, "add": add, "count": count, "merge": merge, "clear": clear,
            "tostring": tostring, "fromstring": fromstring}


def _bloom_functions(memory_limit: int) -> dict[str, Any]:
    def new(*args: Any) -> BloomFilter:
        _arity(args, 2, "new", 1)
        items, p = args
        if isinstance(items, bool) or not isinstance(items, (int, float)) or items < 1:
            raise ApiError("bad argument #1 to 'new' (items must be > 1)")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
            raise ApiError("bad argument #2 to 'new' (probability must be between 0 and 1)")
        bf = BloomFilter(int(items), float(p))
        if memory_limit and len(bf.array) > memory_limit:
            raise ApiError(f"bloom_filter.new() needs {len(bf.array)} bytes, more than the "
                           f"memory_limit ({memory_limit})")
        return bf

    def add(bf: BloomFilter, *args: Any) -> bool:
        _arity(args, 1, "add")
        return bf.add(key_bytes(args[0], "add"))

    def query(bf: BloomFilter, *args: Any) -> bool:
        _arity(args, 1, "query")
        return bf.query(key_bytes(args[0], "query"))

    def count(bf: BloomFilter, *args: Any) -> int:
        _arity(args, 0, "count")
        return bf.added

    def clear(bf: BloomFilter, *args: Any) -> None:
        _arity(args, 0, "clear")
        bf.clear()

    def items(bf: BloomFilter) -> int:
        return bf.items

    def probability(bf: BloomFilter) -> float:
        return bf.probability

    def tostring(bf: BloomFilter) -> bytes:
        return bf.to_bytes()

    def fromstring(bf: BloomFilter, *args: Any) -> None:
        _arity(args, 1, "fromstring")
        bf.from_bytes(_string_arg(args[0], "fromstring"))

    return {"new": new, "add": add, "query": query, "count": count, "clear": clear,
            "items": items, "probability": probability, "tostring": tostring,
            "fromstring": fromstring}


def install(box: LuaSandbox, output_limit: int) -> None:
    """Give hekapy's Lua modules of `box` what they need from Python."""
    box.provide("cjson", {"output_limit": max(0, output_limit)})
    for module, functions in (("hyperloglog", _hll_functions(box.memory_limit)),
                              ("bloom_filter", _bloom_functions(box.memory_limit))):
        box.provide(module, {name: box.lua_function(fn, 0)
                             for name, fn in functions.items()})
