/* symbolize/elf-file.c -- map a module's file and read the few ELF structures the unwinder
 * needs: PT_LOAD (file offset <-> module vaddr), PT_GNU_RELRO, NT_GNU_BUILD_ID and the
 * binary-search table of .eh_frame_hdr; plus a copy of a target's [vdso].
 *
 * Every file comes from a target and is hostile input: each header value is checked
 * against the size of the mapping before it is used, and a file that is not a usable
 * x86-64 ELF is still a module (its frames are shown as module+0xoff), never an error that
 * could hide the rest of a stack. The image is mapped read-only and private; libelf reads
 * it through elf_memory() and never writes to it (ELF_C_READ_MMAP semantics). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "macro.h"

/* DWARF pointer encodings used by .eh_frame_hdr (LSB 5.0, "DWARF Exception Header"). */
#define DW_EH_PE_absptr 0x00
#define DW_EH_PE_uleb128 0x01
#define DW_EH_PE_udata2 0x02
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_udata8 0x04
#define DW_EH_PE_sleb128 0x09
#define DW_EH_PE_sdata2 0x0a
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_sdata8 0x0c
#define DW_EH_PE_pcrel 0x10
#define DW_EH_PE_datarel 0x30
#define DW_EH_PE_omit 0xff

#define MODULE_FILE_SIZE_MAX (UINT64_C(1) << 36)        /* 64 GiB: a sanity bound only */

static bool range_in(uint64_t off, uint64_t len, uint64_t size) {
        return off <= size && len <= size - off;
}

/* Decodes one encoded pointer at P (AVAIL bytes readable) whose own vaddr is FIELD_VADDR.
 * Returns the number of bytes consumed, or 0 when the encoding is unsupported/truncated. */
static size_t eh_decode(const uint8_t *p, size_t avail, uint8_t enc, uint64_t field_vaddr,
                        uint64_t datarel_base, uint64_t *ret) {
        uint64_t v = 0;
        size_t n;

        switch (enc & 0x0f) {
        case DW_EH_PE_absptr:
        case DW_EH_PE_udata8:
        case DW_EH_PE_sdata8:
                n = 8;
                break;
        case DW_EH_PE_udata4:
        case DW_EH_PE_sdata4:
                n = 4;
                break;
        case DW_EH_PE_udata2:
        case DW_EH_PE_sdata2:
                n = 2;
                break;
        case DW_EH_PE_uleb128:
        case DW_EH_PE_sleb128: {
                unsigned shift = 0;
                uint8_t b = 0x80;
                for (n = 0; n < avail && n < 10 && (b & 0x80); n++) {
                        b = p[n];
                        v |= (uint64_t) (b & 0x7f) << shift;
                        shift += 7;
                }
                if (b & 0x80)
                        return 0;
                if ((enc & 0x0f) == DW_EH_PE_sleb128 && shift < 64 && (b & 0x40))
                        v |= ~UINT64_C(0) << shift;
                goto apply;
        }
        default:
                return 0;
        }
        if (n > avail)
                return 0;

        switch (enc & 0x0f) {
        case DW_EH_PE_udata2: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
        case DW_EH_PE_sdata2: { int16_t x; memcpy(&x, p, 2); v = (uint64_t) (int64_t) x; break; }
        case DW_EH_PE_udata4: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
        case DW_EH_PE_sdata4: { int32_t x; memcpy(&x, p, 4); v = (uint64_t) (int64_t) x; break; }
        default: memcpy(&v, p, 8); break;
        }

apply:
        switch (enc & 0x70) {
        case 0:
                break;
        case DW_EH_PE_pcrel:
                v += field_vaddr;
                break;
        case DW_EH_PE_datarel:
                v += datarel_base;
                break;
        default:
                return 0;
        }
        *ret = v;
        return n;
}

/* .eh_frame_hdr: version, eh_frame_ptr_enc, fde_count_enc, table_enc, eh_frame_ptr,
 * fde_count, then the sorted (initial_location, fde) table. libunwind's remote table
 * search reads the table as pairs of int32 relative to the header (datarel|sdata4), so any
 * other table encoding is treated as "no table". */
static void parse_eh_frame_hdr(Module *m, const GElf_Phdr *ph) {
        if (!range_in(ph->p_offset, ph->p_filesz, m->image_size) || ph->p_filesz < 4)
                return;
        const uint8_t *hdr = m->image + ph->p_offset;
        size_t avail = ph->p_filesz, pos = 4;
        uint64_t vaddr = ph->p_vaddr, eh_frame, fde_count;
        size_t n;

        if (hdr[0] != 1)
                return;
        if (hdr[1] == DW_EH_PE_omit || hdr[2] == DW_EH_PE_omit)
                return;
        if (hdr[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
                return;

        n = eh_decode(hdr + pos, avail - pos, hdr[1], vaddr + pos, vaddr, &eh_frame);
        if (n == 0)
                return;
        pos += n;
        n = eh_decode(hdr + pos, avail - pos, hdr[2], vaddr + pos, vaddr, &fde_count);
        if (n == 0)
                return;
        pos += n;

        if (fde_count == 0 || fde_count > MODULE_FDE_COUNT_MAX)
                return;
        if (fde_count * 8 > avail - pos)
                return;

        m->has_eh_table = true;
        m->eh_hdr_vaddr = vaddr;
        m->eh_table_vaddr = vaddr + pos;
        m->eh_fde_count = fde_count;
}

static void hex_encode(const uint8_t *p, size_t n, char *ret) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                ret[2 * i] = digits[p[i] >> 4];
                ret[2 * i + 1] = digits[p[i] & 15];
        }
        ret[2 * n] = 0;
}

/* Looks for NT_GNU_BUILD_ID in the note data. true when found (RET filled). */
static bool find_build_id_in(Elf_Data *data, char ret[static 2 * MODULE_BUILD_ID_MAX + 1]) {
        GElf_Nhdr nhdr;
        size_t off = 0, name_off, desc_off, next;

        if (!data || !data->d_buf)
                return false;
        while (off < data->d_size &&
               (next = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
                if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == sizeof "GNU" &&
                    name_off + sizeof "GNU" <= data->d_size &&
                    memcmp((const char *) data->d_buf + name_off, "GNU", sizeof "GNU") == 0 &&
                    nhdr.n_descsz > 0 && nhdr.n_descsz <= MODULE_BUILD_ID_MAX &&
                    range_in(desc_off, nhdr.n_descsz, data->d_size)) {
                        hex_encode((const uint8_t *) data->d_buf + desc_off, nhdr.n_descsz, ret);
                        return true;
                }
                if (next <= off)
                        break;
                off = next;
        }
        return false;
}

static int read_build_id(Module *m, const GElf_Phdr *notes, size_t n_notes) {
        char hex[2 * MODULE_BUILD_ID_MAX + 1];
        bool found = false;

        for (size_t i = 0; i < n_notes && !found; i++) {
                if (!range_in(notes[i].p_offset, notes[i].p_filesz, m->image_size))
                        continue;
                Elf_Data *d = elf_getdata_rawchunk(m->elf, (int64_t) notes[i].p_offset,
                                                   notes[i].p_filesz, ELF_T_NHDR);
                found = find_build_id_in(d, hex);
        }

        /* No PT_NOTE (or a stripped one): try SHT_NOTE sections. */
        for (Elf_Scn *scn = NULL; !found && (scn = elf_nextscn(m->elf, scn));) {
                GElf_Shdr shdr;
                if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
                        continue;
                if (!range_in(shdr.sh_offset, shdr.sh_size, m->image_size))
                        continue;
                found = find_build_id_in(elf_getdata(scn, NULL), hex);
        }

        if (!found)
                return 0;
        m->build_id = symbolizer_intern(m->symbolizer, hex);
        return m->build_id ? 0 : -ENOMEM;
}

static void parse_elf(Module *m) {
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *) m->image;
        GElf_Phdr notes[8];
        size_t n_notes = 0, phnum;

        if (m->image_size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
            eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
            eh->e_machine != EM_X86_64 || (eh->e_type != ET_EXEC && eh->e_type != ET_DYN))
                return;

        m->elf = elf_memory((char *) m->image, m->image_size);
        if (!m->elf)
                return;
        if (elf_kind(m->elf) != ELF_K_ELF || elf_getphdrnum(m->elf, &phnum) < 0) {
                elf_end(m->elf);
                m->elf = NULL;
                return;
        }
        m->exec_type = eh->e_type == ET_EXEC;
        m->text_start = UINT64_MAX;
        m->text_end = 0;

        for (size_t i = 0; i < phnum && i < 4096; i++) {
                GElf_Phdr ph;
                if (!gelf_getphdr(m->elf, (int) i, &ph))
                        continue;
                switch (ph.p_type) {
                case PT_LOAD: {
                        if (m->n_loads >= MODULE_LOADS_MAX)
                                break;
                        if (ph.p_vaddr + ph.p_memsz < ph.p_vaddr ||
                            ph.p_offset + ph.p_filesz < ph.p_offset)
                                break;
                        LoadSegment *l = &m->loads[m->n_loads++];
                        l->vaddr = ph.p_vaddr;
                        l->memsz = ph.p_memsz;
                        l->offset = ph.p_offset;
                        /* A truncated file: only what exists can be read. */
                        l->filesz = ph.p_offset >= m->image_size ? 0 :
                                MIN(ph.p_filesz, m->image_size - ph.p_offset);
                        l->executable = ph.p_flags & PF_X;
                        l->writable = ph.p_flags & PF_W;
                        if (l->executable && ph.p_memsz > 0) {
                                m->text_start = MIN(m->text_start, ph.p_vaddr);
                                m->text_end = MAX(m->text_end, ph.p_vaddr + ph.p_memsz);
                        }
                        break;
                }
                case PT_GNU_RELRO:
                        if (ph.p_vaddr + ph.p_memsz >= ph.p_vaddr) {
                                m->relro_start = ph.p_vaddr;
                                m->relro_end = ph.p_vaddr + ph.p_memsz;
                        }
                        break;
                case PT_GNU_EH_FRAME:
                        parse_eh_frame_hdr(m, &ph);
                        break;
                case PT_NOTE:
                        if (n_notes < ARRAY_SIZE(notes))
                                notes[n_notes++] = ph;
                        break;
                }
        }
        if (m->text_start >= m->text_end)
                m->text_start = m->text_end = 0;
        if (m->has_eh_table && m->text_start == m->text_end)
                m->has_eh_table = false;

        (void) read_build_id(m, notes, n_notes);
}

int module_load_image(Module *m, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size <= 0)
                return -ENODATA;
        if ((uint64_t) st.st_size > MODULE_FILE_SIZE_MAX)
                return -EFBIG;

        void *p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        m->image = p;
        m->image_size = (size_t) st.st_size;

        parse_elf(m);
        return 0;
}

void module_unload_image(Module *m) {
        if (m->elf)
                elf_end(m->elf);
        m->elf = NULL;
        if (m->image)
                (void) munmap((void *) m->image, m->image_size);
        m->image = NULL;
        m->image_size = 0;
}

bool module_offset_to_vaddr(const Module *m, uint64_t offset, uint64_t *ret) {
        /* The PT_LOAD whose file bytes hold OFFSET; failing that (the page slack around a
         * segment, mapped too), the one whose page-rounded file range does. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < m->n_loads; i++) {
                        const LoadSegment *l = &m->loads[i];
                        uint64_t lo = l->offset, hi = l->offset + l->filesz;
                        if (pass == 1) {
                                lo &= ~UINT64_C(0xfff);
                                hi = (hi + 0xfff) & ~UINT64_C(0xfff);
                        }
                        if (offset >= lo && offset < hi) {
                                *ret = offset - l->offset + l->vaddr;
                                return true;
                        }
                }
        return false;
}

bool module_read_file(const Module *m, uint64_t offset, uint64_t vaddr, void *buf, size_t len) {
        if (!m->image || offset >= m->image_size)
                return false;
        if (m->relro_end > m->relro_start && vaddr < m->relro_end && vaddr + len > m->relro_start)
                return false;
        size_t n = (size_t) MIN((uint64_t) len, m->image_size - offset);
        memcpy(buf, m->image + offset, n);
        if (n < len)
                memset((uint8_t *) buf + n, 0, len - n);
        return true;
}

static int read_memory(pid_t pid, uint64_t start, void *buf, size_t size) {
        struct iovec local = { .iov_base = buf, .iov_len = size };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) start, .iov_len = size };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n < 0)
                return -errno;
        if ((size_t) n != size)
                return -EIO;
        return 0;
}

int vdso_open_memfd(pid_t pid, uint64_t start, uint64_t size) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (size == 0 || size > VDSO_SIZE_MAX)
                return -EINVAL;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;

        r = read_memory(pid, start, buf, size);
        if (r < 0) {
                /* The target is gone (a saved capture) or unreadable: every process on this
                 * kernel maps the same 64-bit vdso image, so ours is the same file. */
                unsigned long self = getauxval(AT_SYSINFO_EHDR);
                if (self == 0)
                        return r;
                r = read_memory(getpid(), self, buf, size);
                if (r < 0)
                        return r;
        }

        fd = memfd_create("cprofd-vdso", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, buf + done, size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        return TAKE_FD(fd);
}
