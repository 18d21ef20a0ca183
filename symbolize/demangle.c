/* symbolize/demangle.c -- mangled ELF symbol names made readable, with libiberty's
 * demangler (what gdb and binutils use), cached per interned name.
 *
 * Options as gdb 13 shows a minimal symbol (checked against its `info symbol` and frame
 * names): parameters, cv-qualifiers and DMGL_VERBOSE, so C++ standard substitutions are
 * spelled out ("std::basic_string<char, ...>", not "std::string"), Rust legacy names
 * keep their "::h<hash>" and v0 names their crate disambiguators ("std[e282...]::"), as
 * c++filt prints them too. Under DMGL_AUTO libiberty tries Rust first (a legacy Rust name
 * is also a valid Itanium name) and then C++; passing the style explicitly keeps any
 * global style setting out of it. */
#include <libiberty/demangle.h>
#include <stdlib.h>
#include <string.h>

#include "demangle.h"
#include "internal.h"

char *demangle(const char *name) {
        if (!name || strnlen(name, DEMANGLE_NAME_MAX + 1) > DEMANGLE_NAME_MAX)
                return NULL;
        return cplus_demangle(name, DMGL_PARAMS | DMGL_ANSI | DMGL_VERBOSE | DMGL_AUTO);
}

const char *symbolizer_demangle(Symbolizer *s, const char *name) {
        if (!name)
                return NULL;
        /* Interned: the pointer is the name. The value is the name itself when it does not
         * demangle. */
        const char *cached = u64map_get(&s->demangled, (uintptr_t) name);
        if (cached)
                return cached;

        char *text = demangle(name);
        const char *result = text && strcmp(text, name) != 0 ? symbolizer_intern(s, text) : name;
        free(text);
        u64map_put(&s->demangled, (uintptr_t) name, (void *) result);
        return result;
}
