/* symbolize/demangle.h -- C++ (Itanium ABI) and Rust (legacy and v0) symbol names as gdb
 * prints them. */
#pragma once

/* Longest name handed to the demangler: libiberty's C++ demangler keeps its parse tree in
 * stack arrays of about 70 bytes per input byte, so a hostile symbol table could otherwise
 * overflow a worker's stack. Longer names stay mangled. */
#define DEMANGLE_NAME_MAX 8192

/* NAME demangled as gdb shows a symbol that has no DWARF: "ns::f(int)",
 * "mangled::park_forever::h5d0c...", "<u64 as mangled[ac9f...]::Checkout>::checkout". A malloc()ed string
 * the caller frees, or NULL when NAME is not a mangled name the demangler understands (or
 * is longer than DEMANGLE_NAME_MAX, or memory ran out). */
char *demangle(const char *name);
