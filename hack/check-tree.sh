#!/usr/bin/env bash
# Fails when a tracked file is a build output: an executable binary (ELF,
# Mach-O, PE) or larger than 1 MiB, outside testdata/ directories; or a
# hand-written Go file outside api/ over 400 lines (split it along what it
# does).
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r -d '' f; do
  case "$f" in */testdata/*|testdata/*) continue ;; esac
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f")
  if [ "$size" -gt 1048576 ]; then
    echo "tracked file larger than 1 MiB: $f ($size bytes)"; bad=1
  fi
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    7f454c46|cffaedfe|cefaedfe|feedface|feedfacf|4d5a*)
      echo "tracked executable binary: $f"; bad=1 ;;
  esac
done < <(git ls-files -z)
while IFS= read -r -d '' f; do
  case "$f" in api/*|*zz_generated*) continue ;; esac
  [ -f "$f" ] || continue
  lines=$(wc -l < "$f")
  if [ "$lines" -gt 400 ]; then
    echo "Go file over 400 lines: $f ($lines)"; bad=1
  fi
done < <(git ls-files -z -- '*.go')
exit $bad
