# Point a "version needed" entry of an ELF file (e.g. GLIBC_2.38) at an older version the system libc defines (same hash rules as the loader, elf_hash of the name).
import struct, sys
path, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
b = bytearray(open(path, 'rb').read())
# ELF64 little endian
e_shoff = struct.unpack_from('<Q', b, 0x28)[0]; e_shentsize, e_shnum, e_shstrndx = struct.unpack_from('<HHH', b, 0x3A)
secs = [struct.unpack_from('<IIQQQQIIQQ', b, e_shoff + i * e_shentsize) for i in range(e_shnum)]
def elf_hash(n):
    h = 0
    for c in n:
        h = ((h << 4) + c) & 0xffffffff
        g = h & 0xf0000000
        if g: h ^= g >> 24
        h &= ~g & 0xffffffff
    return h
SHT_GNU_verneed = 0x6ffffffe
vr = [s for s in secs if s[1] == SHT_GNU_verneed][0]
dynstr = secs[vr[6]]
stroff = dynstr[4]
strtab = bytes(b[stroff:stroff + dynstr[5]])
new_idx = strtab.find(b'\0' + new + b'\0') + 1
assert new_idx > 0, 'new version string not in .dynstr'
off = vr[4]
done = 0
while True:
    vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from('<HHIII', b, off)
    a = off + vn_aux
    for _ in range(vn_cnt):
        vna_hash, vna_flags, vna_other, vna_name, vna_next = struct.unpack_from('<IHHII', b, a)
        name = strtab[vna_name:strtab.index(b'\0', vna_name)]
        if name == old:
            struct.pack_into('<IHHII', b, a, elf_hash(new), vna_flags, vna_other, new_idx, vna_next)
            done += 1
        if not vna_next: break
        a += vna_next
    if not vn_next: break
    off += vn_next
open(path, 'wb').write(b)
print('rewrote', done)
