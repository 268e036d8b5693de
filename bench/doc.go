// Package bench measures wskit end to end beside peer libraries. It is its
// own module so that the peers (gorilla/websocket) are never downloaded by
// wskit's users; it holds only tests and benchmarks.
//
//	cd bench && go test -run '^$' -bench Echo -benchmem -count 6 | tee /tmp/echo.txt
//	benchstat -col /impl /tmp/echo.txt
package bench
