"""The work tools/nnh5.py does per tensor (doc/SPEED.md, "Python module"): a save holds no
dataset open once it is written, and a load asks HDF5 for object info per group, not per
dataset (a hard link's address is in the group's listing), while ties, aliases reached
through soft links and the per-load cap still work as before."""
import pycommon as pc
from pycommon import check, expect_error, h5py, nnh5, np, path

N_LAYERS, PER_LAYER = 40, 5  # 200 tensors in 40 module groups under 2 top-level groups


def state_dict():
    sizes = [64, 128, 256, 512, 1024]
    sd = {}
    for i in range(N_LAYERS):
        for j in range(PER_LAYER):
            top = "model" if i % 2 else "optim"
            sd[f"{top}.layers.{i}.p{j}"] = np.full(sizes[j], i * 10 + j, dtype=np.float32)
    return sd


class CountingH5O:
    """nnh5's h5o module with get_info counted."""

    def __init__(self, real):
        self.real, self.get_info_calls = real, 0

    def get_info(self, *a, **kw):
        self.get_info_calls += 1
        return self.real.get_info(*a, **kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


def save_holds_no_dataset_open():
    """Every dataset is closed once written: HDF5 need not keep (and close at the end) one
    open object per tensor."""
    open_at_close = []
    orig = nnh5._Writer.close

    def close(writer):
        open_at_close.append(h5py.h5f.get_obj_count(writer.file.id, h5py.h5f.OBJ_DATASET))
        return orig(writer)
    nnh5._Writer.close = close
    try:
        sd = state_dict()
        nnh5.save_state_dict(sd, path("sd.h5"))
        a = np.arange(6, dtype=np.float32)
        nnh5.save({"a": a, "b": a, "c": np.ones(3)}, path("dict.h5"))  # b: a hard link to a
    finally:
        nnh5._Writer.close = orig
    check(open_at_close == [0, 0], "no dataset is open when the file is closed",
          f"open datasets at close: {open_at_close} (saves of {len(sd)} and 3 tensors)")
    back = nnh5.load(path("dict.h5"), numpy=True)
    check(np.shares_memory(back["a"], back["b"]) and np.array_equal(back["b"], a),
          "a tie to a closed dataset is still a hard link to it")


def load_asks_object_info_per_group():
    sd = state_dict()
    f = path("sd.h5")
    nnh5.save_state_dict(sd, f)
    real = nnh5.h5o
    counting = nnh5.h5o = CountingH5O(real)
    try:
        back = nnh5.load_state_dict(f, numpy=True)
    finally:
        nnh5.h5o = real
    groups = 2 + 2 + N_LAYERS  # model, optim, their two layers groups, one per layer
    check(list(back) == list(sd) and all(np.array_equal(back[k], sd[k]) for k in sd),
          "the state dict loads back, in order")
    check(counting.get_info_calls <= groups + 2,
          "H5Oget_info per group (and the root), not per dataset",
          f"{counting.get_info_calls} calls for {len(sd)} datasets in {groups} groups")


def aliases_by_address():
    """Names of one dataset are recognised by the address their hard link holds; distinct
    datasets side by side in one group stay distinct; soft links still resolve."""
    f = path("aliases.h5")
    with h5py.File(f, "w") as h:
        x = h.create_dataset("g/x", data=np.arange(4, dtype=np.float32))
        h.create_dataset("g/y", data=np.arange(4, 8, dtype=np.float32))
        h["h/x_again"] = x               # a hard link in another group
        h["h/y_soft"] = h5py.SoftLink("/g/y")
        h["z"] = x                       # and at the root
    back = nnh5.load(f, numpy=True, verify_checksums=False)
    check(sorted(back) == ["g/x", "g/y", "h/x_again", "h/y_soft", "z"], "every name loads",
          str(sorted(back)))
    check(np.shares_memory(back["g/x"], back["h/x_again"])
          and np.shares_memory(back["g/x"], back["z"]), "hard links load tied")
    check(np.shares_memory(back["g/y"], back["h/y_soft"]), "a soft link loads tied")
    check(not np.shares_memory(back["g/x"], back["g/y"])
          and np.array_equal(back["g/y"], np.arange(4, 8, dtype=np.float32)),
          "two datasets of one group are two tensors")
    # counted once each: 2 datasets of 16 bytes fit 32 bytes; as copies, 5 names do not
    nnh5.load(f, numpy=True, verify_checksums=False, max_load_bytes=32)
    expect_error(lambda: nnh5.load(f, numpy=True, verify_checksums=False, max_load_bytes=32,
                                   copy_aliases=True),
                 nnh5.LimitError, ["max_load_bytes"], "aliases as copies count each time")


with pc.pure():  # what the h5py code does per tensor (libnnh5 does no h5py call at all)
    save_holds_no_dataset_open()
    load_asks_object_info_per_group()
aliases_by_address()
pc.finish("percall")
