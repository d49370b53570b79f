#ifndef SOCKWAY_CZLIB_H
#define SOCKWAY_CZLIB_H

#include <zlib.h>

// deflateInit2 and inflateInit2 are macros (they pass the library version and the stream size);
// Swift cannot call macros, so these shims do.
static inline int CZlib_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}

static inline int CZlib_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}

#endif
