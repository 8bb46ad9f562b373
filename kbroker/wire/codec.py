"""Encoders and decoders derived from the declarations in `kbroker.wire.schema`.

`codec_for(struct_cls, version, flexible)` compiles, once per (struct, version, flexible), a
decoder ``(buf, pos) -> (value, pos)`` and an encoder ``(writer, value) -> None``, generated
as straight-line Python from the declaration; runs of consecutive fixed-width fields collapse
into a single `struct.Struct` so a Fetch partition or a Produce response entry costs one
unpack/pack.

Records fields decode to a zero-copy memoryview of the frame. When encoding, a records value
may also be any object with a ``size`` attribute (`SizedPayload`): the encoder writes its length
prefix and hands the object over to `Writer.parts`, so the server can `sendfile` file slices
between the encoded bytes.
"""
from __future__ import annotations

import operator
import struct
from typing import Any, Callable, Protocol

from kbroker.wire import primitives as p
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import Array, Field, Primitive, fields_of


class SizedPayload(Protocol):
    """Bytes that are not in memory (e.g. file slices); only their size is known here."""

    size: int


class Writer:
    """Collects encoded bytes; sized payloads split the output into parts."""

    __slots__ = ("buf", "parts")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.parts: list[Any] = []

    def attach(self, payload: SizedPayload) -> None:
        self.parts.append(self.buf)
        self.parts.append(payload)
        self.buf = bytearray()

    def finish(self) -> list[Any]:
        """bytearrays and sized payloads, in wire order."""
        return [*self.parts, self.buf] if self.parts else [self.buf]


Decoder = Callable[[memoryview, int], tuple[Any, int]]
Encoder = Callable[[Writer, Any], None]

_FIXED_FORMAT = {"bool": "?", "int8": "b", "int16": "h", "int32": "i", "int64": "q",
                 "uint16": "H", "uint32": "I", "float64": "d"}

# A memo of compiling (struct, version, flexible), the same for every broker in the process: not state.
_cache: dict[tuple[type, int, bool], tuple[Decoder, Encoder]] = {}


def codec_for(struct_cls: type, version: int, flexible: bool) -> tuple[Decoder, Encoder]:
    key = (struct_cls, version, flexible)
    codec = _cache.get(key)
    if codec is None:
        codec = _cache[key] = _compile_struct(struct_cls, version, flexible)
    return codec


def decode(struct_cls: type, version: int, flexible: bool, buf: memoryview, pos: int = 0) -> tuple[Any, int]:
    return codec_for(struct_cls, version, flexible)[0](buf, pos)


def encode(struct_cls: type, version: int, flexible: bool, value: Any, writer: Writer | None = None) -> Writer:
    writer = writer or Writer()
    codec_for(struct_cls, version, flexible)[1](writer, value)
    return writer


# -- structs ---------------------------------------------------------------------------------

def _compile_struct(cls: type, version: int, flexible: bool) -> tuple[Decoder, Encoder]:
    """Generate the struct's decoder and encoder as Python source: one straight-line function
    each, with every fixed-width run as one unpack/pack and every other field as one call,
    so a request costs no per-field closures, dict or ``**kwargs`` (dataclasses does the same
    for ``__init__``)."""
    fields = [f for f in fields_of(cls) if f.present_in(version)]
    tagged = sorted((f for f in fields_of(cls) if flexible and f.tagged_in(version)), key=lambda f: f.tag)
    env: dict[str, Any] = {"cls": cls, "DecodeError": DecodeError}
    dec = ["def decode_struct(buf, pos):"]
    enc = ["def encode_struct(out, value):"]
    for i, group in enumerate(_group_fixed(fields)):
        if isinstance(group, list):
            layout = struct.Struct(">" + "".join(_FIXED_FORMAT[f.type.name] for f in group))
            env[f"unpack{i}"], env[f"pack{i}"] = layout.unpack_from, layout.pack
            names = [f.name for f in group]
            targets = "".join(f"f_{name}, " for name in names)
            dec += [f"    if pos + {layout.size} > len(buf):",
                    f"        raise DecodeError({f'truncated fields {names} at offset '!r} + str(pos))",
                    f"    {targets}= unpack{i}(buf, pos)",
                    f"    pos += {layout.size}"]
            enc.append(f"    out.buf += pack{i}({', '.join(f'value.{name}' for name in names)})")
        else:
            env[f"read{i}"] = _reader(group.type, version, flexible, version in group.nullable, group.name)
            env[f"write{i}"] = _writer(group.type, version, flexible, version in group.nullable, group.name)
            dec.append(f"    f_{group.name}, pos = read{i}(buf, pos)")
            enc.append(f"    write{i}(out, value.{group.name})")
    arguments = [f"{f.name}=f_{f.name}" for f in fields]
    if flexible:
        env["read_tagged"], env["write_tagged"] = _decode_tagged(tagged, version), _encode_tagged(tagged, version)
        dec += ["    tags = {}",
                "    if pos < len(buf) and buf[pos] == 0:  # no tagged fields, the usual case",
                "        pos += 1",
                "    else:",
                "        pos = read_tagged(buf, pos, tags)"]
        enc.append("    write_tagged(out, value)")
        if tagged:
            arguments.append("**tags")
    dec.append(f"    return cls({', '.join(arguments)}), pos")
    if len(enc) == 1:
        enc.append("    pass")
    exec(compile("\n".join(dec + [""] + enc), f"<codec {cls.__name__} v{version}>", "exec"), env)
    return env["decode_struct"], env["encode_struct"]


def _group_fixed(fields: list[Field]) -> list[Field | list[Field]]:
    """Runs of fixed-width primitive fields become lists; everything else stays single."""
    groups: list[Field | list[Field]] = []
    for f in fields:
        fixed = isinstance(f.type, Primitive) and f.type.name in _FIXED_FORMAT
        if fixed and groups and isinstance(groups[-1], list):
            groups[-1].append(f)
        elif fixed:
            groups.append([f])
        else:
            groups.append(f)
    return groups


def _decode_tagged(tagged: list[Field], version: int) -> Callable[[memoryview, int, dict], int]:
    readers = {f.tag: (f.name, _reader(f.type, version, True, version in f.nullable, f.name)) for f in tagged}

    def step(buf: memoryview, pos: int, values: dict) -> int:
        count, pos = p.read_uvarint(buf, pos)
        for _ in range(count):
            tag, pos = p.read_uvarint(buf, pos)
            size, pos = p.read_uvarint(buf, pos)
            end = pos + size
            if end > len(buf):
                raise DecodeError(f"tagged field {tag} runs past the end of the buffer")
            known = readers.get(tag)
            if known is not None:  # unknown tags are skipped, as the protocol requires
                values[known[0]], _ = known[1](buf[:end], pos)
            pos = end
        return pos

    return step


def _encode_tagged(tagged: list[Field], version: int) -> Callable[[Writer, Any], None]:
    writers = [(f.tag, operator.attrgetter(f.name), f.default,
                _writer(f.type, version, True, version in f.nullable, f.name)) for f in tagged]

    def step(out: Writer, value: Any) -> None:
        present = []
        for tag, get, default, write in writers:
            field_value = get(value)
            if field_value != default and not (field_value == [] and default == ()):
                body = Writer()
                write(body, field_value)
                present.append((tag, body.buf))
        p.write_uvarint(out.buf, len(present))
        for tag, body in present:
            p.write_uvarint(out.buf, tag)
            p.write_uvarint(out.buf, len(body))
            out.buf += body

    return step


# -- field types -----------------------------------------------------------------------------

def _length_io(flexible: bool, classic: str) -> tuple[p.LengthReader, p.LengthWriter]:
    if flexible:
        return p.read_compact_length, p.write_compact_length
    if classic == "int16":
        return p.read_int16_length, p.write_int16_length
    return p.read_int32_length, p.write_int32_length


def _reader(type_: Any, version: int, flexible: bool, nullable: bool, name: str) -> Decoder:
    if isinstance(type_, Array):
        return _array_reader(type_, version, flexible, nullable, name)
    if not isinstance(type_, Primitive):
        return _struct_reader(type_, version, flexible, nullable, name)
    kind = type_.name
    if kind in _FIXED_FORMAT:
        layout = struct.Struct(">" + _FIXED_FORMAT[kind])
        size, unpack = layout.size, layout.unpack_from

        def read_fixed(buf: memoryview, pos: int) -> tuple[Any, int]:
            if pos + size > len(buf):
                raise DecodeError(f"truncated {kind} {name!r} at offset {pos}")
            return unpack(buf, pos)[0], pos + size

        return read_fixed
    if kind == "uuid":
        return p.read_uuid
    read_length, _ = _length_io(flexible, "int16" if kind == "string" else "int32")
    read_value = {"string": p.read_str, "bytes": p.read_bytes, "records": p.read_view}[kind]

    def read_sized(buf: memoryview, pos: int) -> tuple[Any, int]:
        length, pos = read_length(buf, pos)
        if length < 0:
            if length == -1 and nullable:
                return None, pos
            raise DecodeError(f"null or negative length for non-nullable {name!r}")
        return read_value(buf, pos, length)

    return read_sized


def _array_reader(type_: Array, version: int, flexible: bool, nullable: bool, name: str) -> Decoder:
    read_length, _ = _length_io(flexible, "int32")
    read_element = _reader(type_.element, version, flexible, False, name)

    def read_array(buf: memoryview, pos: int) -> tuple[Any, int]:
        count, pos = read_length(buf, pos)
        if count < 0:
            if count == -1 and nullable:
                return None, pos
            raise DecodeError(f"null or negative array length for {name!r}")
        if count > len(buf) - pos:  # every element takes at least one byte
            raise DecodeError(f"array {name!r} claims {count} elements, frame has {len(buf) - pos} bytes left")
        items = []
        for _ in range(count):
            item, pos = read_element(buf, pos)
            items.append(item)
        return items, pos

    return read_array


def _struct_reader(cls: type, version: int, flexible: bool, nullable: bool, name: str) -> Decoder:
    decode: Decoder | None = None  # compiled at first use: structs may nest before they are compiled

    def read_struct(buf: memoryview, pos: int) -> tuple[Any, int]:
        nonlocal decode
        if nullable:
            if pos >= len(buf):
                raise DecodeError(f"truncated struct {name!r}")
            pos += 1
            if buf[pos - 1] == 0xFF:
                return None, pos
        if decode is None:
            decode = codec_for(cls, version, flexible)[0]
        return decode(buf, pos)

    return read_struct


def _writer(type_: Any, version: int, flexible: bool, nullable: bool, name: str) -> Encoder:
    if isinstance(type_, Array):
        return _array_writer(type_, version, flexible, name)
    if not isinstance(type_, Primitive):
        return _struct_writer(type_, version, flexible, nullable)
    kind = type_.name
    if kind in _FIXED_FORMAT:
        pack = struct.Struct(">" + _FIXED_FORMAT[kind]).pack
        return lambda out, value: out.buf.__iadd__(pack(value))
    if kind == "uuid":
        return lambda out, value: p.write_uuid(out.buf, value)
    _, write_length = _length_io(flexible, "int16" if kind == "string" else "int32")

    def write_sized(out: Writer, value: Any) -> None:
        if value is None:
            if not nullable:
                raise ValueError(f"{name!r} is not nullable in version {version}")
            write_length(out.buf, -1)
        elif isinstance(value, str):
            data = value.encode()
            write_length(out.buf, len(data))
            out.buf += data
        elif isinstance(value, (bytes, bytearray, memoryview)):
            write_length(out.buf, len(value))
            out.buf += value
        else:  # a SizedPayload: the server writes it after the bytes before it
            write_length(out.buf, value.size)
            out.attach(value)

    return write_sized


def _array_writer(type_: Array, version: int, flexible: bool, name: str) -> Encoder:
    _, write_length = _length_io(flexible, "int32")
    write_element = _writer(type_.element, version, flexible, False, name)

    def write_array(out: Writer, items: Any) -> None:
        if items is None:
            write_length(out.buf, -1)
            return
        write_length(out.buf, len(items))
        for item in items:
            write_element(out, item)

    return write_array


def _struct_writer(cls: type, version: int, flexible: bool, nullable: bool) -> Encoder:
    encode: Encoder | None = None  # compiled at first use, as in _struct_reader

    def write_struct(out: Writer, value: Any) -> None:
        nonlocal encode
        if nullable:
            out.buf.append(0xFF if value is None else 1)
            if value is None:
                return
        if encode is None:
            encode = codec_for(cls, version, flexible)[1]
        encode(out, value)

    return write_struct
