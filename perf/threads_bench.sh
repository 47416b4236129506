#!/bin/sh
# TERSE_THREADS=1 against =2 (or $THREADS): perf/compress_bench on blocked compressors, the two
# settings alternated $ROUNDS times so that load drifts hit both; prints the median encode and
# decode time of each and their ratio, with the load before and after. CSV in $OUT (default
# threads_bench.csv). Usage: perf/threads_bench.sh BUILD_DIR
set -eu
build=${1:-build}
rounds=${ROUNDS:-5}
threads=${THREADS:-2}
out=${OUT:-threads_bench.csv}
specs=${SPECS:-"sign,block=65536;topk:0.01,block=65536;randk:0.01,block=65536;fp16,block=65536"}
size=${SIZE:-4M}
tmp=$(mktemp -d)
echo "load before: $(uptime)"
for r in $(seq "$rounds"); do
    for t in 1 "$threads"; do
        TERSE_THREADS=$t nice -n 0 "$build/perf/compress_bench" --sizes "$size" \
            --compressors "$specs" --csv "$tmp/t$t.r$r.csv" >/dev/null
    done
done
echo "load after:  $(uptime)"
python3 - "$tmp" "$rounds" "$threads" "$out" <<'PY'
import csv, glob, statistics, sys
tmp, rounds, th, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = {}
for t in ("1", th):
    for f in glob.glob(f"{tmp}/t{t}.r*.csv"):
        for row in csv.DictReader(open(f)):
            key = (row["compressor"], row["elements"])
            d = data.setdefault(key, {}).setdefault(t, {"enc": [], "dec": []})
            d["enc"].append(float(row["seconds"]))
            d["dec"].append(float(row["decode_seconds"]))
with open(out, "w") as f:
    w = csv.writer(f)
    w.writerow(["compressor", "elements", "threads", "enc_median_s", "dec_median_s", "runs"])
    print(f"{'compressor':24} {'elements':>9} {'enc 1t ms':>10} {'enc '+th+'t ms':>10} {'x':>5} "
          f"{'dec 1t ms':>10} {'dec '+th+'t ms':>10} {'x':>5}")
    for key, d in data.items():
        m = {t: (statistics.median(d[t]["enc"]), statistics.median(d[t]["dec"])) for t in d}
        for t in d:
            w.writerow([key[0], key[1], t, m[t][0], m[t][1], len(d[t]["enc"])])
        print(f"{key[0]:24} {key[1]:>9} {m['1'][0]*1e3:10.3f} {m[th][0]*1e3:10.3f} "
              f"{m['1'][0]/m[th][0]:5.2f} {m['1'][1]*1e3:10.3f} {m[th][1]*1e3:10.3f} "
              f"{m['1'][1]/m[th][1]:5.2f}")
PY
rm -rf "$tmp"
