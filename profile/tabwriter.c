/* profile/tabwriter.c -- a port of Go's text/tabwriter, fixed to the configuration pprof
 * uses: NewWriter(w, minwidth=1, tabwidth=8, padding=1, padchar='\t', flags=0), with the
 * whole text written at once and flushed at the end.
 *
 * Why a port and not "pad to the widest cell": Go aligns per *column block* (a run of
 * consecutive lines that all have a cell in that column), recursively from the left, and
 * a line with a single cell (or an empty line) ends every block. Text profiles are
 * compared byte for byte against Go's, so the algorithm, the padding arithmetic and the
 * flush points are kept exactly; the Go names are kept in comments to ease review.
 *
 * Like Go, the escape byte 0xff (tabwriter.Escape) starts and ends an escaped run whose
 * tabs and newlines are plain text; the escape bytes are kept and not counted. '\v' ends
 * a cell like '\t', '\f' ends a line and forces a flush. Widths are Go rune counts.
 *
 * Recursion depth is the number of columns of the widest line: callers format their own
 * text (the profile encoders never let a tab through from a symbol name). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tabwriter.h"
#include "utf8-util.h"

#define MINWIDTH 1
#define TABWIDTH 8
#define PADDING 1
#define ESCAPE '\xff'

typedef struct Cell {
        size_t size;                    /* cell size in bytes */
        long width;                     /* cell width in runes (escapes can make it < 0) */
        bool htab;                      /* terminated by '\t' (not '\v') */
} Cell;

typedef struct Line {
        Cell *cells;
        size_t n, cap;
} Line;

typedef struct TabWriter {
        Buf *out;
        Buf text;                       /* b.buf: collected text without tabs and newlines */
        size_t width_pos;               /* b.pos: text up to here is counted in cell.width */
        Cell cell;                      /* current, incomplete cell */
        char end_char;                  /* ESCAPE inside an escaped run, else 0 */
        Line *lines;                    /* lines[0..n_lines); entries beyond keep memory */
        size_t n_lines, cap_lines;
        long *widths;                   /* column widths of the enclosing blocks (a stack) */
        size_t n_widths, cap_widths;
} TabWriter;

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
        if (need <= *cap)
                return p;
        size_t c = *cap ? *cap : 8;
        while (c < need)
                c *= 2;
        p = reallocarray(p, c, elem);
        if (!p)
                abort();                /* as Buf does: sizes are bounded by the callers */
        *cap = c;
        return p;
}

static void tw_add_line(TabWriter *w) {
        size_t old = w->cap_lines;
        w->lines = grow(w->lines, &w->cap_lines, w->n_lines + 1, sizeof(Line));
        if (w->cap_lines > old)
                memset(w->lines + old, 0, (w->cap_lines - old) * sizeof(Line));
        w->lines[w->n_lines++].n = 0;
}

static void tw_reset(TabWriter *w) {
        buf_reset(&w->text);
        w->width_pos = 0;
        w->cell = (Cell) {};
        w->end_char = 0;
        w->n_lines = 0;
        w->n_widths = 0;
        tw_add_line(w);
}

static void tw_append(TabWriter *w, const char *p, size_t n) {
        buf_append(&w->text, p, n);
        w->cell.size += n;
}

static void tw_update_width(TabWriter *w) {
        w->cell.width += (long) utf8_rune_count(w->text.data + w->width_pos, w->text.len - w->width_pos);
        w->width_pos = w->text.len;
}

/* Returns the number of cells in the line. */
static size_t tw_terminate_cell(TabWriter *w, bool htab) {
        Line *l = &w->lines[w->n_lines - 1];
        w->cell.htab = htab;
        l->cells = grow(l->cells, &l->cap, l->n + 1, sizeof(Cell));
        l->cells[l->n++] = w->cell;
        w->cell = (Cell) {};
        return l->n;
}

static void tw_end_escape(TabWriter *w) {
        tw_update_width(w);
        w->cell.width -= 2;             /* the escape bytes are kept but not counted */
        w->width_pos = w->text.len;
        w->end_char = 0;
}

static void tw_write_padding(TabWriter *w, long textw, long cellw) {
        /* padchar is '\t': the cell is widened to a multiple of the tab width and filled
         * with as many tabs as it takes to get there. */
        cellw = (cellw + TABWIDTH - 1) / TABWIDTH * TABWIDTH;
        long n = cellw - textw;
        if (n < 0)
                n = 0;                  /* Go panics ("internal error"); cannot happen here */
        for (long i = (n + TABWIDTH - 1) / TABWIDTH; i > 0; i--)
                buf_putc(w->out, '\t');
}

static size_t tw_write_lines(TabWriter *w, size_t pos, size_t line0, size_t line1) {
        for (size_t i = line0; i < line1; i++) {
                const Line *l = &w->lines[i];

                for (size_t j = 0; j < l->n; j++) {
                        const Cell *c = &l->cells[j];

                        if (c->size > 0) {
                                buf_append(w->out, w->text.data + pos, c->size);
                                pos += c->size;
                        }
                        if (j < w->n_widths)
                                tw_write_padding(w, c->width, w->widths[j]);
                }

                if (i + 1 == w->n_lines) {
                        /* last buffered line: no newline, just the pending cell's text */
                        buf_append(w->out, w->text.data + pos, w->cell.size);
                        pos += w->cell.size;
                } else
                        buf_putc(w->out, '\n');
        }
        return pos;
}

/* Formats lines [line0, line1) whose text starts at POS; returns the position after
 * them. The column handled at this depth is the number of enclosing blocks. */
static size_t tw_format(TabWriter *w, size_t pos, size_t line0, size_t line1) {
        size_t column = w->n_widths;

        for (size_t this = line0; this < line1; this++) {
                /* The last cell of a line is not tab-terminated and belongs to no column. */
                if (column + 1 >= w->lines[this].n)
                        continue;

                /* A cell exists in this column: print the lines before the block. */
                pos = tw_write_lines(w, pos, line0, this);
                line0 = this;

                /* Column block: consecutive lines with a cell in this column. */
                long width = MINWIDTH;
                for (; this < line1; this++) {
                        const Line *l = &w->lines[this];
                        if (column + 1 >= l->n)
                                break;
                        long cw = l->cells[column].width + PADDING;
                        if (cw > width)
                                width = cw;
                }
                /* (DiscardEmptyColumns is not set: empty columns keep their width.) */

                /* Format the columns to the right, now that this one's width is known. */
                w->widths = grow(w->widths, &w->cap_widths, w->n_widths + 1, sizeof(long));
                w->widths[w->n_widths++] = width;
                pos = tw_format(w, pos, line0, this);
                w->n_widths--;
                line0 = this;
                /* Go's loop now steps past the line that ended the block: that line has
                 * no cell in this column, so skipping its check changes nothing. */
        }

        return tw_write_lines(w, pos, line0, line1);
}

static void tw_flush(TabWriter *w) {
        if (w->cell.size > 0) {
                if (w->end_char != 0)
                        tw_end_escape(w);       /* unterminated escape: end it anyway */
                (void) tw_terminate_cell(w, false);
        }
        (void) tw_format(w, 0, 0, w->n_lines);
        tw_reset(w);
}

static void tw_write(TabWriter *w, const char *s, size_t len) {
        size_t n = 0;           /* start of the text not yet appended */

        for (size_t i = 0; i < len; i++) {
                char ch = s[i];

                if (w->end_char != 0) {
                        if (ch == w->end_char) {
                                tw_append(w, s + n, i + 1 - n);
                                n = i + 1;
                                tw_end_escape(w);
                        }
                        continue;
                }

                switch (ch) {
                case '\t':
                case '\v':
                case '\n':
                case '\f': {
                        tw_append(w, s + n, i - n);
                        tw_update_width(w);
                        n = i + 1;
                        size_t ncells = tw_terminate_cell(w, ch == '\t');
                        if (ch == '\n' || ch == '\f') {
                                tw_add_line(w);
                                /* A line with one cell cannot affect later lines' layout
                                 * (its only cell belongs to no column), so Go flushes. */
                                if (ch == '\f' || ncells == 1)
                                        tw_flush(w);
                        }
                        break;
                }
                case ESCAPE:
                        tw_append(w, s + n, i - n);
                        tw_update_width(w);
                        n = i;          /* the escape byte stays in the text */
                        w->end_char = ESCAPE;
                        break;
                default:
                        break;
                }
        }

        tw_append(w, s + n, len - n);
}

void tabwriter_format(const char *text, size_t len, Buf *out) {
        TabWriter w = { .out = out };

        buf_append(&w.text, "", 0);     /* text.data is never NULL from here on */
        tw_reset(&w);
        tw_write(&w, text, len);
        tw_flush(&w);

        for (size_t i = 0; i < w.cap_lines; i++)
                free(w.lines[i].cells);
        free(w.lines);
        free(w.widths);
        buf_done(&w.text);
}
