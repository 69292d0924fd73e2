// Reads every file described in EXPECTED.json (written by js_check.py from
// h5py) with jsfive and h5wasm and compares groups, attributes and dataset
// values. Prints one line per failure and a summary per reader; exits 1 on
// any failure. Usage: node read_check.mjs EXPECTED.json (run from tests/js).
//
// What a reader cannot represent is asserted, not skipped:
// - h5wasm refuses 16-bit floats (float16, bfloat16) with "Float16 not supported"
//   and 8-bit floats (float8_e4m3fn, float8_e5m2) with "Float8 not supported";
// - jsfive has no getter for 8-bit floats ("view[item_getter] is not a function")
//   and refuses them unless the dataset is empty;
// - jsfive decodes every 16-bit float as IEEE half (bfloat16 bits included),
//   and returns 64-bit integers as JS numbers (exact up to 2^53);
// - plain JS numbers carry no NaN payload: jsfive's NaNs compare as NaN;
// - jsfive returns no attributes for an object whose attributes are in dense
//   storage (HDF5 puts them there when one is larger than 64 KiB: a list of
//   10,000 keys), and cannot list a group of 20,000 links that tracks
//   creation order.
import fs from "fs";
import * as jsfive from "jsfive";
import h5wasm from "h5wasm/node";

const expected = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
await h5wasm.ready;

const stats = {};
let failures = 0;
function count(reader, key) {
  stats[reader] ??= { checks: 0, refused: {}, inexact64: 0 };
  if (key) stats[reader].refused[key] = (stats[reader].refused[key] ?? 0) + 1;
  stats[reader].checks++;
}
function check(reader, ok, where, msg) {
  count(reader);
  if (!ok) {
    failures++;
    console.log(`FAIL ${reader} ${where}: ${msg}`);
  }
  return ok;
}

// ---------------------------------------------------------------- values

function half(bits) {
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function bfloat16(bits) {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, bits << 16, true);
  return dv.getFloat32(0, true);
}

// The stored values as JS values, decoded from h5py's bytes.
function decode(bytes, dt) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / dt.size, out = new Array(n);
  for (let i = 0, o = 0; i < n; i++, o += dt.size) {
    if (dt.class === "bool") out[i] = dv.getInt8(o);
    else if (dt.class === "int") {
      out[i] = dt.size === 8 ? (dt.signed ? dv.getBigInt64(o, true) : dv.getBigUint64(o, true))
        : dv[`get${dt.signed ? "Int" : "Uint"}${dt.size * 8}`](o, true);
    } else if (dt.size === 2) out[i] = dt.bf16 ? bfloat16(dv.getUint16(o, true)) : half(dv.getUint16(o, true));
    else out[i] = dt.size === 4 ? dv.getFloat32(o, true) : dv.getFloat64(o, true);
  }
  return out;
}

function bytesOf(v) {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

// Compare what a reader returned with the stored values; returns a message or "".
function compareValues(reader, got, bytes, dt) {
  const want = decode(bytes, dt);
  if (ArrayBuffer.isView(got)) { // typed arrays carry the bits: compare them exactly
    const b = bytesOf(got);
    if (b.equals(bytes)) return "";
    return `bytes differ (${b.byteLength} read, ${bytes.byteLength} stored)`;
  }
  if (!Array.isArray(got)) got = [got];
  if (got.length !== want.length) return `${got.length} values, expected ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    let w = want[i], g = got[i];
    if (dt.class === "float" && dt.bf16) w = half(new DataView(bytes.buffer, bytes.byteOffset).getUint16(2 * i, true));
    if (typeof w === "bigint") {
      if (typeof g === "bigint") { if (g === w) continue; }
      else if (g === Number(w)) { if (BigInt(g) !== w) stats[reader].inexact64++; continue; }
      return `value ${i}: ${g}, expected ${w}`;
    }
    if (!Object.is(g, w)) return `value ${i}: ${g}, expected ${w}`;
  }
  return "";
}

function attrEqual(got, want) {
  if (want.t === "str") return got === want.v;
  if (want.t === "strs") {
    const g = Array.from(got ?? []);
    return g.length === want.v.length && g.every((x, i) => x === want.v[i]);
  }
  if (Array.isArray(got) || ArrayBuffer.isView(got)) got = got.length === 1 ? got[0] : got;
  if (want.t === "int") return typeof got === "bigint" ? got === BigInt(want.v)
    : typeof got === "number" && got === Number(BigInt(want.v));
  if (want.t === "float") return typeof want.v === "number" ? got === want.v : Number.isNaN(got) || String(got) === want.v;
  return true;
}

// ---------------------------------------------------------------- readers

const readers = {
  jsfive: {
    open(file) {
      const buf = fs.readFileSync(file);
      return new jsfive.File(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), file);
    },
    get: (f, p) => (p === "/" ? f : f.get(p.slice(1))),
    isGroup: (o) => o instanceof jsfive.Group,
    keys: (o) => o.keys,
    attr: (o, n) => o.attrs[n],
    attrNames: (o) => Object.keys(o.attrs),
    shape: (o) => o.shape,
    value: (o) => o.value,
    close() {},
  },
  h5wasm: {
    open: (file) => new h5wasm.File(file, "r"),
    get: (f, p) => f.get(p),
    isGroup: (o) => o instanceof h5wasm.Group,
    keys: (o) => o.keys(),
    attr: (o, n) => o.attrs[n]?.value,
    attrNames: (o) => Object.keys(o.attrs),
    shape: (o) => o.shape ?? [],
    value: (o) => o.value,
    close: (f) => f.close(),
  },
};

// The refusal a reader is expected to make for a dataset, or null.
function expectedRefusal(name, e) {
  const dt = e.dtype;
  if (name === "h5wasm" && dt.class === "float" && dt.size === 2) return /Float16 not supported/;
  if (name === "h5wasm" && dt.class === "float" && dt.size === 1) return /Float8 not supported/;
  // (jsfive reads an empty one: it never needs the getter)
  if (name === "jsfive" && dt.class === "float" && dt.size === 1 && e.shape.every((d) => d > 0))
    return /item_getter\] is not a function/;
  if (name === "jsfive" && e.layout === "compact") return /Compact storage/;
  return null;
}

function checkDataset(name, R, o, e, where) {
  const shape = Array.from(R.shape(o) ?? [], Number);
  check(name, JSON.stringify(shape) === JSON.stringify(e.shape), where,
    `shape ${JSON.stringify(shape)}, expected ${JSON.stringify(e.shape)}`);
  if (e.data === undefined) return;
  const refusal = expectedRefusal(name, e);
  let got;
  try {
    got = R.value(o);
  } catch (err) {
    const msg = String(err?.message ?? err);
    if (refusal && refusal.test(msg)) {
      count(name, e.layout === "compact" && name === "jsfive" ? "compact layout"
        : e.dtype.size === 1 ? "float8" : "float16/bfloat16");
      return;
    }
    check(name, false, where, `cannot read the values: ${msg}`);
    return;
  }
  if (!check(name, !refusal, where, `read although ${refusal} was expected`)) return;
  const bytes = Buffer.from(e.data, "base64");
  const diff = compareValues(name, got, bytes, e.dtype);
  check(name, diff === "", where, diff);
}

function checkFile(name, entry) {
  const R = readers[name];
  // jsfive's FractalHeap fails on groups this large (see js_check.py).
  if (name === "jsfive" && entry.objects.some((e) => e.big_ordered)) {
    let msg = "";
    try {
      const f = R.open(entry.file);
      for (const e of entry.objects) if (e.big_ordered) R.keys(R.get(f, e.path));
    } catch (err) {
      msg = String(err?.message ?? err);
    }
    if (check(name, msg !== "", entry.name, "a large creation-ordered group was read: update read_check.mjs"))
      count(name, "files with a group of over 18,000 creation-ordered links");
    return;
  }
  let f;
  try {
    f = R.open(entry.file);
  } catch (err) {
    check(name, false, entry.name, `does not open: ${err?.message ?? err}`);
    return;
  }
  check(name, true, entry.name, "");
  for (const e of entry.objects) {
    const where = `${entry.name}:${e.path}`;
    let o;
    try {
      o = R.get(f, e.path);
    } catch (err) {
      o = undefined;
      check(name, false, where, `cannot open: ${err?.message ?? err}`);
      continue;
    }
    if (!check(name, o != null, where, "not found")) continue;
    if (e.type === "group") {
      if (!check(name, R.isGroup(o), where, "not a group")) continue;
      const keys = Array.from(R.keys(o)).sort();
      check(name, JSON.stringify(keys) === JSON.stringify(e.links), where,
        `members ${JSON.stringify(keys).slice(0, 200)}, expected ${JSON.stringify(e.links).slice(0, 200)}`);
    } else {
      checkDataset(name, R, o, e, where);
    }
    let names;
    try {
      names = R.attrNames(o).sort();
    } catch (err) {
      check(name, false, where, `cannot list attributes: ${err?.message ?? err}`);
      continue;
    }
    if (name === "jsfive" && e.attrs_dense) {
      if (check(name, names.length === 0, where, "dense attributes were read: update read_check.mjs"))
        count(name, "objects with dense attribute storage (attributes not read)");
      continue;
    }
    check(name, JSON.stringify(names) === JSON.stringify(Object.keys(e.attrs).sort()), where,
      `attributes ${JSON.stringify(names)}, expected ${JSON.stringify(Object.keys(e.attrs).sort())}`);
    for (const [an, want] of Object.entries(e.attrs)) {
      let got;
      try {
        got = R.attr(o, an);
      } catch (err) {
        check(name, false, `${where}@${an}`, `cannot read: ${err?.message ?? err}`);
        continue;
      }
      check(name, attrEqual(got, want), `${where}@${an}`,
        `${String(got).slice(0, 100)}, expected ${JSON.stringify(want.v).slice(0, 100)}`);
    }
  }
  R.close(f);
}

for (const name of Object.keys(readers)) {
  count(name);
  stats[name].checks--;
  for (const entry of expected.files) checkFile(name, entry);
  const s = stats[name];
  const refused = Object.entries(s.refused).map(([k, v]) => `${v} ${k}`).join(", ") || "none";
  console.log(`${name}: ${s.checks} checks on ${expected.files.length} files; ` +
    `refused as expected: ${refused}; 64-bit integers rounded to JS numbers: ${s.inexact64}`);
}
console.log(`read_check: ${failures} failed`);
process.exit(failures ? 1 : 0);
