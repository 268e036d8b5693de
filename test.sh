#!/usr/bin/env bash
# Runs every test of the repository: the wskit module with the race detector,
# the allocation, pool, memory and soak checks without it (the race detector
# allocates, sync.Pool drops items under it, and the soak skips under it),
# the bench and interop modules, which hold the peers wskit is compared and
# tested against, and the nats module (hubs across servers on an embedded
# nats-server). In bench, the echo checks of every server of the zoo run
# again without -race, for nbio, whose own data races skip it under the
# detector. Interop tests skip a missing Node or Chromium unless CI=true;
# interop/install.sh installs them.
set -euo pipefail
cd "$(dirname "$0")"

echo "== wskit: go test -race ./..."
go test -race ./...
echo "== wskit: allocation, pool, memory and soak checks without -race"
go test -run 'Alloc|DoesNotAllocate|Reuse|Pooled|MemoryBound|Soak' ./...
if [ -f bench/go.mod ]; then
	echo "== bench: every zoo server's echo checks without -race (nbio skips them under it)"
	(cd bench && go test -run '^TestZoo$|^TestEcho$' ./...)
fi
for m in bench interop nats prometheus; do
	if [ -f "$m/go.mod" ]; then
		echo "== $m: go test -race ./..."
		(cd "$m" && go test -race ./...)
		echo "== $m: allocation checks without -race"
		(cd "$m" && go test -run 'Alloc' ./...)
	fi
done
