#!/bin/sh
# The house style's measurable rules over src/ (CTest: style.check, label unit):
#   no file over 600 lines, no function over 80 lines (its signature's first line to its
#   closing brace), no `state[<number>]` indexing (each algorithm keeps a typed struct).
# A function is what clang-format writes: a `{` alone in column 0 after the signature and a
# `}` in column 0 that closes it; the signature starts at the nearest line above the `{`
# that begins in column 0. usage: check_style.sh [SRC_DIR]   (default: src next to scripts/)
src=${1:-$(dirname "$0")/../src}
max_file=600
max_func=80
# Functions known to be over the limit while concurrent work splits them (name per line in
# check_style.allow, "#" comments): reported as notes, not failures. Keep the list short.
allow=$(dirname "$0")/check_style.allow
allowed=$( [ -f "$allow" ] && sed 's/#.*//' "$allow" | tr -s ' \n' ' ')
status=0
files=$(find "$src" -name '*.c' -o -name '*.h' | sort)
for f in $files; do
    n=$(wc -l < "$f")
    if [ "$n" -gt "$max_file" ]; then
        echo "check_style: $f: $n lines (at most $max_file)"
        status=1
    fi
    awk -v f="$f" -v max="$max_func" -v allowed=" $allowed " '
        /^[A-Za-z_]/ && !/^(typedef|struct|enum|union|static const|const)[^(]*[=;{]/ { sig = NR; name = $0 }
        /^\{/ { if (sig) { start = sig; fname = name } depth = 1; infn = 1; next }
        infn && /^\}/ {
            len = NR - start + 1
            if (len > max) {
                sub(/\(.*/, "", fname); sub(/.*[ *]/, "", fname)
                known = index(allowed, " " fname " ") > 0
                printf "check_style: %s:%d: %s is %d lines (at most %d)%s\n", f, start, fname, len,
                       max, known ? " [known, check_style.allow]" : ""
                if (!known) bad = 1
            }
            infn = 0; sig = 0
        }
        END { exit bad }' "$f" || status=1
    if grep -nE '(->|\.)state\[[0-9]+\]' "$f" > /dev/null; then
        grep -nE '(->|\.)state\[[0-9]+\]' "$f" | sed "s|^|check_style: $f:|; s|\$|  (index a typed state struct)|"
        status=1
    fi
done
[ "$status" = 0 ] && echo "check_style: $(echo "$files" | wc -l) files: none over $max_file lines, no function over $max_func lines but those in check_style.allow, no state[N]"
exit $status
