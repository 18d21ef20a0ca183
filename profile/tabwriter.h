/* profile/tabwriter.h -- Go's text/tabwriter, as pprof's text profiles use it:
 * NewWriter(w, minwidth=1, tabwidth=8, padding=1, padchar='\t', flags=0).
 *
 * Cells are tab-terminated; the last cell of a line is not part of any column. A column
 * block is a run of consecutive lines that all have a cell in that column; its width is
 * the widest cell + padding, rounded up to the tab width, and cells are padded with tabs.
 * Widths count UTF-8 code points. */
#pragma once

#include "buf.h"

/* Aligns TEXT (lines of tab-separated cells) and appends the result to OUT. */
void tabwriter_format(const char *text, size_t len, Buf *out);
