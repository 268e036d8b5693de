// Command autobahn runs the Autobahn|Testsuite fuzzingclient cases 1 to 10,
// 12 and 13 against a WebSocket echo server:
//
//	go run ./internal/autobahn/cmd/autobahn -url ws://127.0.0.1:9001/
//
// -expect asserts the count of every verdict, not only that none failed:
//
//	autobahn -url ws://127.0.0.1:9001/ -exclude '12.*,13.*' -expect OK=298,INFORMATIONAL=3
package main

import (
	"os"

	"github.com/wskit/wskit/internal/autobahn"
)

func main() { os.Exit(autobahn.Main(os.Args[1:])) }
