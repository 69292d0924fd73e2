#!/usr/bin/python3
"""Keras files built with h5py the way the Keras sources write them.

Debian has no Keras, so the files nnh5 imports are made here, at test time,
following the writers line by line:
  - Keras 2 (tf-keras, keras/saving/legacy/hdf5_format.py):
    save_model_to_hdf5, save_weights_to_hdf5_group (weight names w.name,
    "dense/kernel:0"), save_attributes_to_hdf5_group (split into
    layer_names0.. past 64,512 bytes);
  - Keras 3 legacy .h5 (keras/src/legacy/saving/legacy_h5_format.py):
    weight names str(w.path) ("sequential/dense/kernel"); 3.0 wrote w.name
    ("kernel"); the group top_level_model_weights;
  - Keras 3 .weights.h5 (keras/src/saving/saving_lib.py, H5IOStore):
    layers/<snake_case name>/vars/<i>, bfloat16 through ml_dtypes (h5py
    stores a 2-byte opaque type) marked with attribute dtype = "bfloat16".
Strings are what Keras hands h5py: bytes (fixed-length), except where a
fixture says it uses str (variable-length, as newer h5py writes str).

Usage: make_keras_fixtures.py OUTDIR. Writes the fixtures and expect.h5:
  /x                        a model input (float64)
  /y/<fixture>              the numpy reference output of its model for x
  /sd/<fixture>/<i>         the i-th tensor of the state dict nnh5 must import
                            (exact values; attribute key; bfloat16 as its bits)
"""
import json
import math
import os
import sys

import h5py
import numpy as np

HDF5_OBJECT_HEADER_LIMIT = 64512
rng = np.random.default_rng(20261203)


def save_attributes(group, name, data):
    """save_attributes_to_hdf5_group, as Keras 2 and 3 have it."""
    data_npy = np.asarray(data)
    num_chunks = 1
    chunked = np.array_split(data_npy, num_chunks)
    while any(x.nbytes > HDF5_OBJECT_HEADER_LIMIT for x in chunked):
        num_chunks += 1
        chunked = np.array_split(data_npy, num_chunks)
    if num_chunks > 1:
        for i, chunk in enumerate(chunked):
            group.attrs["%s%d" % (name, i)] = chunk
    else:
        group.attrs[name] = data


def save_strings_vlen(group, name, data):
    group.attrs.create(name, [d.decode() for d in data], dtype=h5py.string_dtype())


def weights(n_in, units, use_bias=True):
    k = rng.standard_normal((n_in, units)).astype(np.float32) * 0.5
    b = rng.standard_normal(units).astype(np.float32) * 0.1 if use_bias else None
    return k, b


# A Sequential: Flatten (2, 3) -> Dense 8 relu -> Dropout -> Dense 5 tanh
# -> Dense 4 sigmoid -> Dense 3 linear without bias (+ gelu for Keras 3).
def model_layers(gelu=False):
    layers = [
        ("input_layer", "InputLayer", {"batch_input_shape": [None, 2, 3]}, None),
        ("flatten", "Flatten", {"data_format": "channels_last"}, None),
        ("dense", "Dense", {"units": 8, "activation": "relu", "use_bias": True}, weights(6, 8)),
        ("dropout", "Dropout", {"rate": 0.25}, None),
        ("dense_1", "Dense", {"units": 5, "activation": "tanh", "use_bias": True}, weights(8, 5)),
        ("dense_2", "Dense", {"units": 4, "activation": "gelu" if gelu else "sigmoid",
                              "use_bias": True}, weights(5, 4)),
        ("dense_3", "Dense", {"units": 3, "activation": "linear", "use_bias": False},
         weights(4, 3, False)),
    ]
    return layers


ACT = {
    "relu": lambda v: np.maximum(v, 0),
    "tanh": np.tanh,
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "gelu": lambda v: v * 0.5 * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
    "linear": lambda v: v,
}


def reference(layers, x):
    """What Keras computes at inference, in float64 from the stored weights."""
    h = x
    for _, cls, cfg, w in layers:
        if cls == "Flatten":
            h = h.reshape(h.shape[0], -1)
        elif cls == "Dense":
            k, b = w
            h = h @ k.astype(np.float64)
            if b is not None:
                h = h + b.astype(np.float64)
            h = ACT[cfg["activation"]](h)
    return h


def expected_sd(layers):
    sd = {}
    for name, cls, _, w in layers:
        if w is None:
            continue
        sd[name + ".weight"] = np.ascontiguousarray(w[0].T)
        if w[1] is not None:
            sd[name + ".bias"] = w[1]
    return sd


def config_json(layers, keras3):
    confs = []
    for name, cls, cfg, _ in layers:
        c = dict(cfg, name=name, trainable=True, dtype="float32")
        if keras3:
            confs.append({"module": "keras.layers", "class_name": cls, "config": c,
                          "registered_name": None})
        else:
            confs.append({"class_name": cls, "config": c})
    return json.dumps({"class_name": "Sequential",
                       "config": {"name": "sequential", "layers": confs}}).encode("utf8")


def write_layer_weights(g, layer_name, w, naming, vlen=False):
    """save_subset_weights_to_hdf5_group with the era's weight names."""
    names = []
    vals = []
    if w is not None:
        for var, val in (("kernel", w[0]), ("bias", w[1])):
            if val is None:
                continue
            if naming == "keras2":
                names.append(("%s/%s:0" % (layer_name, var)).encode("utf8"))
            elif naming == "path":
                names.append(("sequential/%s/%s" % (layer_name, var)).encode("utf8"))
            else:
                names.append(var.encode("utf8"))
            vals.append(val)
    if vlen and names:
        save_strings_vlen(g, "weight_names", names)
    else:
        save_attributes(g, "weight_names", names)
    for name, val in zip(names, vals):
        d = g.create_dataset(name, val.shape, dtype=val.dtype)
        d[:] = val


def write_weights_group(f, layers, naming, keras_version, vlen=False, keras3=False):
    """save_weights_to_hdf5_group: model.layers (no InputLayer), sorted groups."""
    model_layers_ = [l for l in layers if l[1] != "InputLayer"]
    save_attributes(f, "layer_names", [l[0].encode("utf8") for l in model_layers_])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = keras_version.encode("utf8")
    for name, _, _, w in sorted(model_layers_, key=lambda l: l[0]):
        g = f.create_group(name)
        write_layer_weights(g, name, w, naming, vlen)
    if keras3:
        g = f.create_group("top_level_model_weights")
        save_attributes(g, "weight_names", [])


def write_full_model(path, layers, naming, keras3, vlen=False):
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = (b"3.3.3" if keras3 else b"2.11.0")
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = config_json(layers, keras3)
        g = f.create_group("model_weights")
        write_weights_group(g, layers, naming, "3.3.3" if keras3 else "2.11.0", vlen, keras3)


def write_split_weights(path):
    """Keras 2 save_weights to .h5 with names long enough to split layer_names."""
    layers = []
    for i in range(150):
        name = "dense_%03d_" % i + "x" * 230
        layers.append((name, "Dense", {"units": 2}, weights(3, 2)))
        layers.append(("dropout_%03d_" % i + "y" * 230, "Dropout", {"rate": 0.5}, None))
    with h5py.File(path, "w") as f:
        write_weights_group(f, layers, "keras2", "2.11.0")
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs
    return layers


def write_v3_weights(path):
    """Keras 3 model.save_weights("x.weights.h5") of a Sequential."""
    k0, b0 = weights(6, 8)
    k1, b1 = weights(8, 3)
    k1_bf = (k1.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16 bits (truncated)
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        lay = f.create_group("layers")
        for name in ("flatten", "dropout"):
            lay.create_group(name).create_group("vars")
        v = lay.create_group("dense").create_group("vars")
        v["0"] = k0
        v["1"] = b0
        v = lay.create_group("dense_1").create_group("vars")
        ds = v.create_dataset("0", data=k1_bf.view("V2"))  # ml_dtypes bfloat16: opaque
        ds.attrs["dtype"] = "bfloat16"
        v["1"] = b1
        opt = f.create_group("optimizer").create_group("vars")
        opt["0"] = np.array(3, dtype=np.int64)
    sd = {"dense.weight": np.ascontiguousarray(k0.T), "dense.bias": b0,
          "dense_1.weight": np.ascontiguousarray(k1_bf.T), "dense_1.bias": b1}
    return sd


def write_hostile(outdir):
    layers = model_layers()
    # A Conv2D layer: refused naming it and its class.
    conv = list(layers)
    conv.insert(2, ("conv2d", "Conv2D", {"filters": 2, "kernel_size": [1, 1]},
                    (rng.standard_normal((1, 1, 3, 2)).astype(np.float32), np.zeros(2, np.float32))))
    write_full_model(os.path.join(outdir, "bad_class.h5"), conv, "keras2", False)
    # dense_1's kernel has 7 inputs where dense gives 8.
    wrong = list(layers)
    wrong[4] = ("dense_1", "Dense", {"units": 5, "activation": "tanh", "use_bias": True},
                weights(7, 5))
    write_full_model(os.path.join(outdir, "bad_shape.h5"), wrong, "keras2", False)
    # weight_names lists a bias the layer group does not hold.
    p = os.path.join(outdir, "bad_missing.h5")
    write_full_model(p, layers, "keras2", False)
    with h5py.File(p, "a") as f:
        del f["model_weights/dense_1/dense_1/bias:0"]
    # A weight that is an external link to another file.
    other = os.path.join(outdir, "other.h5")
    with h5py.File(other, "w") as f:
        f["kernel"] = np.ones((6, 8), np.float32)
    p = os.path.join(outdir, "bad_extlink.h5")
    write_full_model(p, layers, "keras2", False)
    with h5py.File(p, "a") as f:
        del f["model_weights/dense/dense/kernel:0"]
        f["model_weights/dense/dense/kernel:0"] = h5py.ExternalLink("other.h5", "/kernel")
    # A weights-only file with a BatchNormalization layer (gamma, beta, ...).
    with h5py.File(os.path.join(outdir, "bad_weight.h5"), "w") as f:
        save_attributes(f, "layer_names", [b"batch_normalization"])
        g = f.create_group("batch_normalization")
        names = [b"batch_normalization/gamma:0", b"batch_normalization/beta:0"]
        save_attributes(g, "weight_names", names)
        for n in names:
            g[n] = np.ones(4, np.float32)
    # layer_names split into more (empty) parts than the caps allow names.
    with h5py.File(os.path.join(outdir, "bad_chunks.h5"), "w") as f:
        for i in range(10):
            f.attrs["layer_names%d" % i] = np.asarray([])
    # units that is not an integer.
    frac = list(layers)
    frac[2] = ("dense", "Dense", {"units": 8.5, "activation": "relu", "use_bias": True},
               layers[2][3])
    write_full_model(os.path.join(outdir, "bad_units.h5"), frac, "keras2", False)
    # A softmax activation: not in nnh5's layer set.
    soft = list(layers)
    soft[6] = ("dense_3", "Dense", {"units": 3, "activation": "softmax", "use_bias": False},
               layers[6][3])
    write_full_model(os.path.join(outdir, "bad_softmax.h5"), soft, "keras2", False)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    x = rng.standard_normal((5, 2, 3))
    refs, sds = {}, {}

    l2 = model_layers()
    write_full_model(os.path.join(outdir, "k2_model.h5"), l2, "keras2", False)
    refs["k2_model"], sds["k2_model"] = reference(l2, x), expected_sd(l2)

    l3 = model_layers(gelu=True)
    write_full_model(os.path.join(outdir, "k3_model.h5"), l3, "path", True)
    refs["k3_model"], sds["k3_model"] = reference(l3, x), expected_sd(l3)

    l3n = model_layers()
    write_full_model(os.path.join(outdir, "k3_model_name.h5"), l3n, "name", True, vlen=True)
    refs["k3_model_name"], sds["k3_model_name"] = reference(l3n, x), expected_sd(l3n)

    ls = write_split_weights(os.path.join(outdir, "k2_weights_split.h5"))
    sds["k2_weights_split"] = expected_sd(ls)

    sds["k3.weights"] = write_v3_weights(os.path.join(outdir, "k3.weights.h5"))

    write_hostile(outdir)

    with h5py.File(os.path.join(outdir, "expect.h5"), "w") as f:
        f["x"] = x
        for k, v in refs.items():
            f["y/" + k] = v
        for fx, sd in sds.items():
            g = f.create_group("sd/" + fx)
            for i, (k, v) in enumerate(sd.items()):
                g[str(i)] = v
                g[str(i)].attrs["key"] = k
                if fx == "k3.weights" and k == "dense_1.weight":
                    g[str(i)].attrs["bfloat16"] = 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
