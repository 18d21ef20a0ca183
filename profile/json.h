/* profile/json.h -- the little JSON the text profiles need for scripts: strings escaped
 * so that whatever a target named (threads, symbols, paths) stays one valid string. */
#pragma once

#include "buf.h"

/* Appends S (NULL: null) as a JSON string: quotes, backslashes and control characters
 * escaped, bytes that are not valid UTF-8 replaced by U+FFFD. */
void json_put_string(Buf *out, const char *s);
