/* libFuzzer target: one decoder (FUZZ_SPEC, set per target by CMake) fed arbitrary messages.
 *
 * The receiver's expectations (tensor length, block size, block range, tensor id, step) are
 * taken from the message's own header, so the fuzzer spends its time in the payload parsers
 * rather than on header mismatches. Checks, beyond ASan/UBSan: a rejected message leaves the
 * accumulator untouched, and an accepted one only ever adds finite values. */
#include "compress/compress.h"
#include "compress/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_N (1u << 16) /* keeps every input fast */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static terse_compressor_t c;
    static int ready;
    if (!ready) {
        if (terse_compressor_parse(FUZZ_SPEC, &c) != TERSE_OK)
            abort();
        ready = 1;
    }
    if (size < TERSE__WIRE_HEADER_SIZE)
        return 0;
    uint64_t n = terse__get_u64(data + 8), bs = terse__get_u64(data + 16);
    uint64_t first = terse__get_u64(data + 24), count = terse__get_u64(data + 32);
    uint64_t step = terse__get_u64(data + 40);
    uint32_t tid = terse__get_u32(data + 48);
    if (n == 0 || n > MAX_N)
        return 0;
    terse_compressor_t r = c;
    r.block_size = bs >= n ? 0 : (size_t)bs;
    float *acc = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        acc[i] = 3.0f;
    char msg[256];
    terse_status_t st = terse__decompress_blocks_add(
        &r, data, size, (size_t)n, tid, step, (size_t)first, (size_t)count, acc, msg, sizeof(msg));
    for (size_t i = 0; i < n; i++) {
        if (st != TERSE_OK && acc[i] != 3.0f)
            abort(); /* a rejected message must not have touched acc */
        if (st == TERSE_OK && !isfinite(acc[i]))
            abort(); /* validation lets no non-finite value through */
    }
    free(acc);
    return 0;
}
