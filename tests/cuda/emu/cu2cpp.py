"""cu2cpp.py IN.cu OUT.cpp: rewrites kernel launches k<<<g, b, ...>>>(args); as
emu_launch(dim3(g), dim3(b), coop, [=]() { k(args); }); for the CPU emulator (emu_cuda.h).
coop: the kernel's body synchronises (warp shuffles, __syncthreads)."""
import re, sys
src = open(sys.argv[1]).read()
coop = set()
for m in re.finditer(r"__global__\s+void\s+(\w+)\s*\(", src):
    i = src.index("{", m.end())
    depth, j = 0, i
    while True:
        if src[j] == "{": depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0: break
        j += 1
    body = src[i:j]
    if re.search(r"__syncthreads|warp_sum|warp_max|__shfl|block_sum", body):
        coop.add(m.group(1))
out, pos = [], 0
while True:
    k = src.find("<<<", pos)
    if k < 0: break
    # the callee: identifier with optional template args, just before <<<
    m = re.search(r"(\w+)(<[^<>;]*>)?\s*$", src[pos:k])
    start = pos + m.start()
    name = m.group(1)
    e = src.index(">>>", k)
    cfg = src[k + 3:e]
    parts, depth, cur = [], 0, ""
    for ch in cfg:
        if ch == "(": depth += 1
        if ch == ")": depth -= 1
        if ch == "," and depth == 0: parts.append(cur); cur = ""
        else: cur += ch
    parts.append(cur)
    a = src.index("(", e + 3)
    depth, j = 0, a
    while True:
        if src[j] == "(": depth += 1
        elif src[j] == ")":
            depth -= 1
            if depth == 0: break
        j += 1
    args = src[a + 1:j]
    callee = src[start:k].strip()
    out.append(src[pos:start])
    out.append("emu_launch(dim3(%s), dim3(%s), %s, [=]() { %s(%s); })" % (
        parts[0].strip(), parts[1].strip(), "true" if name in coop else "false", callee, args))
    pos = j + 1
out.append(src[pos:])
open(sys.argv[2], "w").write("".join(out))
print("%s: coop kernels: %s" % (sys.argv[1], ", ".join(sorted(coop)) or "-"))
