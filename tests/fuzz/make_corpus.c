/* Writes the fuzzers' seed corpus: a few small valid messages per codec (whole tensors,
 * block ranges, each Top-K index encoding). Usage: fuzz_make_corpus <corpus dir>. */
#include "compress/compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void emit(const char *dir, const char *codec, int id, const void *p, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, codec);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/seed_%02d", dir, codec, id);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len)
        exit(1);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *codecs[][2] = {{"none", "none"},
                               {"fp16", "fp16"},
                               {"bf16", "bf16"},
                               {"sign", "sign"},
                               {"topk", "topk:0.05"},
                               {"randk", "randk:0.05,seed=3"},
                               {"induced", "induced:0.05,0.1,seed=3"}};
    float v[300];
    for (int i = 0; i < 300; i++)
        v[i] = (float)((i * 7919) % 201 - 100) / 16.0f;
    static unsigned char wire[1 << 16];
    for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
        int id = 0;
        size_t sizes[] = {1, 9, 300};
        size_t blocks[] = {0, 64};
        for (int s = 0; s < 3; s++) {
            for (int b = 0; b < 2; b++) {
                for (int enc = -1; enc < TERSE__TOPK_ENC_COUNT; enc++) {
                    int sparse = !strcmp(codecs[c][0], "topk") || !strcmp(codecs[c][0], "induced");
                    if (enc >= 0 && !sparse)
                        continue;
                    terse_compressor_t k;
                    if (terse_compressor_parse(codecs[c][1], &k) != TERSE_OK)
                        return 1;
                    k.block_size = blocks[b];
                    terse__topk_force_encoding(enc);
                    size_t n = sizes[s], nb = terse__compress_nblocks(&k, n);
                    size_t first = nb > 2 ? 1 : 0, count = nb > 2 ? nb - 2 : nb, len;
                    char msg[128];
                    if (terse__compress_blocks(&k, v, n, 7, 11, first, count, wire, sizeof(wire),
                                               &len, NULL, NULL, msg, sizeof(msg)) != TERSE_OK)
                        return 1;
                    emit(argv[1], codecs[c][0], id++, wire, len);
                }
            }
        }
    }
    return 0;
}
