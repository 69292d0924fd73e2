// Writes tests/data/written-by-hdf5-2.0.hdf5 with h5wasm (libhdf5 2.0) and
// the newest format it knows: "weight" is a gzip-compressed chunked dataset,
// whose layout message (version 5) HDF5 1.10 cannot decode; "bias" is a plain
// contiguous dataset any HDF5 reads. The file is committed; this script says
// how it was made: node tests/js/write_newer.mjs OUT (from tests/js, after
// npm ci).
import h5wasm from "h5wasm/node";

const out = process.argv[2];
if (!out) {
  console.error("usage: node write_newer.mjs OUT");
  process.exit(2);
}
await h5wasm.ready;
const f = new h5wasm.File(out, "w", { libver: "latest" });
const w = new Float32Array(64).map((_, i) => i / 4);
f.create_dataset({ name: "weight", data: w, shape: [64], chunks: [16], compression: "gzip" });
f.create_dataset({ name: "bias", data: new Float32Array([0.5, -1, 2, 3]), shape: [4] });
f.close();
