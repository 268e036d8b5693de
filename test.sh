#!/usr/bin/env bash
# Runs every test of the repository: the wskit module with the race detector,
# the allocation checks without it (the race detector allocates), and the
# bench and interop modules, which hold the peers wskit is compared and
# tested against. Interop tests skip a missing Node or Chromium unless
# CI=true; interop/install.sh installs them.
set -euo pipefail
cd "$(dirname "$0")"

echo "== wskit: go test -race ./..."
go test -race ./...
echo "== wskit: allocation and memory checks without -race"
go test -run 'Alloc|DoesNotAllocate|Reuse|MemoryBound' ./...
for m in bench interop prometheus; do
	if [ -f "$m/go.mod" ]; then
		echo "== $m: go test -race ./..."
		(cd "$m" && go test -race ./...)
		echo "== $m: allocation checks without -race"
		(cd "$m" && go test -run 'Alloc' ./...)
	fi
done
