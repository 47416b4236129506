/*
 * compress_bench: single-core throughput of every compressor, no MPI.
 *
 * For each compressor and tensor size: encode time (wire only), elements/s, input GB/s, wire
 * bytes, the ratio to memcpy bandwidth measured in the same run on the same size, and the
 * decode + accumulate rate (elements/s; pairs/s for sparse codecs). For topk:0.01 an
 * nth_element-style baseline (copy + quickselect + gather) gives the selection speedup.
 * Buffers are allocated once for the largest size and pre-touched (first-touch page faults
 * would otherwise dominate small runs).
 *
 * Usage: compress_bench [--sizes 1K,64K,1M,16M,64M] [--iters N] [--simd auto|avx512|avx2|scalar]
 *                       [--compressors spec;spec;...] [--csv FILE] [--json FILE]
 */
#include "compress/compress.h"
#include "compress/kernels.h"
#include "core/config.h"
#include "core/pool.h"
#include "core/half.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SIZES 16
#define MAX_SPECS 16

static const char *default_specs[] = {"none",      "fp16",       "bf16",       "sign",
                                      "topk:0.01", "topk:0.001", "randk:0.01", "induced:0.01,0.01"};

typedef struct row {
    char spec[48];
    size_t n;
    double enc_s, input_gbps, ratio_to_memcpy, elems_per_s, memcpy_gbps;
    size_t wire_bytes, pairs;
    double dec_s, dec_elems_per_s, dec_pairs_per_s;
    double nth_s; /* 0 when not measured */
} row_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t parse_size(const char *s)
{
    char *end;
    double x = strtod(s, &end);
    if (*end == 'K' || *end == 'k')
        x *= 1024;
    else if (*end == 'M' || *end == 'm')
        x *= 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        x *= 1024.0 * 1024 * 1024;
    return (size_t)x;
}

/* Iterations so one measurement takes ~0.25 s (at least 1; --iters overrides). */
static int auto_iters(double one, int fixed)
{
    if (fixed > 0)
        return fixed;
    int it = one > 0 ? (int)(0.25 / one) : 1000;
    return it < 1 ? 1 : (it > 2000 ? 2000 : it);
}

/* Quickselect on |v| bits for the k-th largest, then gather: what nth_element-based Top-K
 * does (std::nth_element on a copy, then one pass keeping entries >= the k-th value). */
static uint32_t quickselect(uint32_t *a, size_t n, size_t kth)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        uint32_t p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > p) /* descending */
                i++;
            while (a[j] < p)
                j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (kth <= j)
            hi = j;
        else if (kth >= i)
            lo = i;
        else
            break;
    }
    return a[kth];
}

static double nth_baseline(const float *v, size_t n, size_t k, uint32_t *tmp, uint32_t *idx,
                           float *vals)
{
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        tmp[i] = terse__f32_bits(v[i]) & 0x7fffffffu;
    uint32_t thr = quickselect(tmp, n, k - 1);
    size_t c = 0;
    for (size_t i = 0; i < n && c < k; i++)
        if ((terse__f32_bits(v[i]) & 0x7fffffffu) >= thr) {
            idx[c] = (uint32_t)i;
            vals[c++] = v[i];
        }
    return now() - t0;
}

/* Encode and decode through the collectives' path: a prebuilt range, on the compression pool
 * when TERSE_THREADS asks for more than one thread (results identical to one thread). */
static terse_status_t enc(const terse_compressor_t *c, const float *v, size_t n, uint64_t step,
                          void *wire, size_t cap, size_t *len_p)
{
    terse__crange_t r;
    terse_status_t st = terse__crange_init(&r, c, NULL, 0);
    if (st == TERSE_OK)
        st = terse__crange_at(&r, n, 1, step, 0, terse__compress_nblocks(c, n));
    terse__cenc_args_t a = {.v = v, .wire = wire, .wire_cap = cap};
    return st == TERSE_OK ? terse__cblocks_encode_par(&r, &a, len_p) : st;
}

static terse_status_t dec(const terse_compressor_t *c, const void *wire, size_t len, size_t n,
                          float *acc)
{
    terse__crange_t r;
    terse_status_t st = terse__crange_init(&r, c, NULL, 0);
    if (st == TERSE_OK)
        st = terse__crange_at(&r, n, 1, 0, 0, terse__compress_nblocks(c, n));
    terse__cdec_args_t a = {.wire = wire, .wire_len = len, .op = TERSE__CDEC_ADD, .out = acc};
    return st == TERSE_OK ? terse__cblocks_decode_par(&r, &a) : st;
}

static size_t pairs_of(const terse_compressor_t *c, size_t n)
{
    size_t bs = c->block_size ? c->block_size : n, total = 0;
    for (size_t s = 0; s < n; s += bs) {
        size_t nb = n - s < bs ? n - s : bs;
        if (c->kind == TERSE_COMPRESSOR_TOPK || c->kind == TERSE_COMPRESSOR_RANDK)
            total += terse__compress_k(c->ratio, nb);
        else if (c->kind == TERSE_COMPRESSOR_INDUCED)
            total += terse__compress_k(c->ratio, nb) + terse__compress_k(c->randk_ratio, nb);
        else
            total += nb;
    }
    return total;
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES] = {1024, 65536, 1 << 20, 16 << 20, 64 << 20};
    int nsizes = 5, iters = 0;
    const char *specs[MAX_SPECS];
    int nspecs = 0;
    const char *csv = NULL, *json = NULL, *simd = "auto";
    char *spec_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            char *s = strdup(argv[++i]);
            for (char *t = strtok(s, ","); t && nsizes < MAX_SIZES; t = strtok(NULL, ","))
                sizes[nsizes++] = parse_size(t);
            free(s);
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--simd") && i + 1 < argc) {
            simd = argv[++i];
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv = argv[++i];
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (!strcmp(argv[i], "--compressors") && i + 1 < argc) {
            spec_arg = strdup(argv[++i]);
            for (char *t = strtok(spec_arg, ";"); t && nspecs < MAX_SPECS; t = strtok(NULL, ";"))
                specs[nspecs++] = t;
        } else {
            fprintf(stderr,
                    "usage: %s [--sizes 1K,64K,1M,16M,64M] [--iters N] [--simd "
                    "auto|avx512|avx2|scalar] [--compressors 'spec;spec'] [--csv FILE] "
                    "[--json FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!nspecs)
        for (size_t i = 0; i < sizeof(default_specs) / sizeof(default_specs[0]); i++)
            specs[nspecs++] = default_specs[i];
    if (terse__ckernels_set(simd) != 0) {
        fprintf(stderr, "--simd %s: unknown or not supported by this cpu\n", simd);
        return 2;
    }
    size_t maxn = 0;
    for (int s = 0; s < nsizes; s++)
        maxn = sizes[s] > maxn ? sizes[s] : maxn;
    terse_compressor_t cs[MAX_SPECS];
    size_t maxwire = 0;
    for (int i = 0; i < nspecs; i++) {
        if (terse_compressor_parse(specs[i], &cs[i]) != TERSE_OK) {
            fprintf(stderr, "bad compressor spec '%s'\n", specs[i]);
            return 2;
        }
        size_t w = terse_compress_max_bytes(&cs[i], maxn);
        maxwire = w > maxwire ? w : maxwire;
    }
    float *v = malloc(maxn * 4), *acc = malloc(maxn * 4), *dst = malloc(maxn * 4);
    uint8_t *wire = malloc(maxwire);
    uint32_t *tmp = malloc(maxn * 4), *idx = malloc(maxn * 4);
    if (!v || !acc || !dst || !wire || !tmp || !idx) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* pre-touch everything, and gradient-like data: roughly normal, varied magnitudes */
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < maxn; i++) {
        double s = 0;
        for (int j = 0; j < 4; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            s += (double)(x >> 11) * 0x1.0p-53 - 0.5;
        }
        v[i] = (float)(s * 1e-3 * (double)(1 + (x & 3)));
    }
    memset(acc, 0, maxn * 4), memset(dst, 0, maxn * 4), memset(wire, 0, maxwire);
    memset(tmp, 0, maxn * 4), memset(idx, 0, maxn * 4);

    row_t *rows = calloc((size_t)nsizes * (size_t)nspecs, sizeof(row_t));
    int nrows = 0;
    int threads = terse__config()->threads > 0 ? terse__config()->threads : 1;
    terse__pool_start(threads, NULL, NULL, terse__compress_scratch_release);
    printf("kernels: %s, threads: %d (TERSE_THREADS)\n", terse__ckernels()->name,
           terse__pool_size());
    printf("%-18s %10s %11s %9s %12s %7s %9s %11s %11s %8s\n", "compressor", "elements", "enc_s",
           "in_GB/s", "wire_bytes", "x_mcpy", "Melem/s", "dec_Melem/s", "dec_Mpair/s", "vs_nth");
    for (int s = 0; s < nsizes; s++) {
        size_t n = sizes[s];
        /* memcpy bandwidth on this size, measured now */
        double t0 = now();
        memcpy(dst, v, n * 4);
        int mi = auto_iters(now() - t0, iters);
        t0 = now();
        for (int it = 0; it < mi; it++) {
            memcpy(dst, v, n * 4);
            __asm__ volatile("" ::"r"(dst) : "memory"); /* keep every copy */
        }
        double mcpy_gbps = (double)n * 4 * mi / (now() - t0) / 1e9;
        for (int i = 0; i < nspecs; i++) {
            row_t *r = &rows[nrows++];
            snprintf(r->spec, sizeof(r->spec), "%s", specs[i]);
            r->n = n;
            r->memcpy_gbps = mcpy_gbps;
            size_t cap = terse_compress_max_bytes(&cs[i], n), len = 0;
            t0 = now();
            if (enc(&cs[i], v, n, 0, wire, cap, &len) != TERSE_OK)
                return 1;
            int it_n = auto_iters(now() - t0, iters);
            t0 = now();
            for (int it = 0; it < it_n; it++)
                enc(&cs[i], v, n, (uint64_t)it, wire, cap, &len);
            r->enc_s = (now() - t0) / it_n;
            enc(&cs[i], v, n, 0, wire, cap, &len);
            r->wire_bytes = len;
            r->input_gbps = (double)n * 4 / r->enc_s / 1e9;
            r->elems_per_s = (double)n / r->enc_s;
            r->ratio_to_memcpy = r->input_gbps / mcpy_gbps;
            t0 = now();
            dec(&cs[i], wire, len, n, acc);
            it_n = auto_iters(now() - t0, iters);
            t0 = now();
            for (int it = 0; it < it_n; it++)
                dec(&cs[i], wire, len, n, acc);
            r->dec_s = (now() - t0) / it_n;
            r->pairs = pairs_of(&cs[i], n);
            r->dec_elems_per_s = (double)n / r->dec_s;
            r->dec_pairs_per_s = (double)r->pairs / r->dec_s;
            if (!strcmp(specs[i], "topk:0.01")) {
                size_t k = terse__compress_k(0.01, n);
                double one = nth_baseline(v, n, k, tmp, idx, dst);
                int bn = auto_iters(one, iters);
                double tot = 0;
                for (int it = 0; it < bn; it++)
                    tot += nth_baseline(v, n, k, tmp, idx, dst);
                r->nth_s = tot / bn;
            }
            char vs[16] = "";
            if (r->nth_s > 0)
                snprintf(vs, sizeof(vs), "%.1fx", r->nth_s / r->enc_s);
            printf("%-18s %10zu %11.3e %9.2f %12zu %7.2f %9.1f %11.1f %11.1f %8s\n", r->spec, n,
                   r->enc_s, r->input_gbps, r->wire_bytes, r->ratio_to_memcpy, r->elems_per_s / 1e6,
                   r->dec_elems_per_s / 1e6, r->dec_pairs_per_s / 1e6, vs);
        }
        printf("%-18s %10zu %11.3e %9.2f   (memcpy of the same bytes)\n", "memcpy", n,
               (double)n * 4 / mcpy_gbps / 1e9, mcpy_gbps);
    }
    if (csv) {
        FILE *f = fopen(csv, "w");
        if (!f)
            return 1;
        fprintf(f, "compressor,elements,seconds,input_gbps,wire_bytes,ratio_to_memcpy,"
                   "elements_per_s,memcpy_gbps,decode_seconds,decode_elements_per_s,"
                   "decode_pairs_per_s,nth_element_seconds,kernels\n");
        for (int i = 0; i < nrows; i++) {
            row_t *r = &rows[i];
            fprintf(f, "\"%s\",%zu,%.9g,%.6g,%zu,%.6g,%.6g,%.6g,%.9g,%.6g,%.6g,%.9g,%s\n", r->spec,
                    r->n, r->enc_s, r->input_gbps, r->wire_bytes, r->ratio_to_memcpy,
                    r->elems_per_s, r->memcpy_gbps, r->dec_s, r->dec_elems_per_s,
                    r->dec_pairs_per_s, r->nth_s, terse__ckernels()->name);
        }
        fclose(f);
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f)
            return 1;
        fprintf(f, "{\"kernels\": \"%s\", \"results\": [\n", terse__ckernels()->name);
        for (int i = 0; i < nrows; i++) {
            row_t *r = &rows[i];
            fprintf(f,
                    "  {\"compressor\": \"%s\", \"elements\": %zu, \"seconds\": %.9g, "
                    "\"input_gbps\": %.6g, \"wire_bytes\": %zu, \"ratio_to_memcpy\": %.6g, "
                    "\"elements_per_s\": %.6g, \"memcpy_gbps\": %.6g, \"decode_seconds\": %.9g, "
                    "\"decode_elements_per_s\": %.6g, \"decode_pairs_per_s\": %.6g, "
                    "\"nth_element_seconds\": %.9g}%s\n",
                    r->spec, r->n, r->enc_s, r->input_gbps, r->wire_bytes, r->ratio_to_memcpy,
                    r->elems_per_s, r->memcpy_gbps, r->dec_s, r->dec_elems_per_s,
                    r->dec_pairs_per_s, r->nth_s, i + 1 < nrows ? "," : "");
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    free(rows), free(v), free(acc), free(dst), free(wire), free(tmp), free(idx), free(spec_arg);
    terse__pool_stop();
    terse__compress_scratch_release();
    return 0;
}
