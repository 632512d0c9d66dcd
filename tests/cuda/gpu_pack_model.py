"""gpu_pack_model.py SRC DST: the default model for the GPU machine (scripts/gpu_pack.sh): SRC's
float32 model.safetensors rewritten as float16 into DST (rounded to nearest even, as torch's .half()
rounds), so that the model fits the 64 MiB the device tool carries (87 MB -> 44 MB); other dtypes
kept; config.json and vocab.txt copied. bertlab's loader reads F16 as float32. Standard library
only (this machine's python3 has neither numpy nor torch)."""
import json
import os
import shutil
import struct
import sys


def convert(src_file, dst_file):
    with open(src_file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        meta = header.pop("__metadata__", None)
        names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
        out, chunks, off, converted = {}, [], 0, 0
        for name in names:
            h = header[name]
            a, b = h["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dtype = h["dtype"]
            if dtype == "F32":
                count = (b - a) // 4
                buf = bytearray()
                for i in range(0, count, 1 << 20):
                    m = min(1 << 20, count - i)
                    buf += struct.pack("<%de" % m, *struct.unpack_from("<%df" % m, raw, 4 * i))
                raw, dtype = bytes(buf), "F16"
                converted += 1
            out[name] = {"dtype": dtype, "shape": h["shape"], "data_offsets": [off, off + len(raw)]}
            chunks.append(raw)
            off += len(raw)
    if meta is not None:
        out["__metadata__"] = meta
    hdr = json.dumps(out, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    tmp = dst_file + ".tmp"
    with open(tmp, "wb") as g:
        g.write(struct.pack("<Q", len(hdr)))
        g.write(hdr)
        for c in chunks:
            g.write(c)
    os.replace(tmp, dst_file)
    return converted, len(names)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gpu_pack_model.py SRC_MODEL_DIR DST_DIR")
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    conv, total = convert(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    for name in ("config.json", "vocab.txt"):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    print("gpu_pack_model: %d of %d tensors F32 -> F16 in %s/model.safetensors" % (conv, total, dst))


if __name__ == "__main__":
    main()
