// Command wskit is the wskit toolkit's command line: a demo server, an
// interactive client and a load generator.
//
//	wskit serve [-addr :8080] [-engine auto|poll|std] [-max-message 64MiB] [-ping 0] [-timeout 15s] [-chat-replay 0]
//		[-log-level debug|info|warn|error] [-log-format text|json]
//	wskit dial [-send TEXT]... [-count N] [-wait 2s] [-binary] [-json] [-commands] [-H 'Name: value']...
//		[-origin O] [-subprotocol P]... [-timeout 15s] URL
//	wskit bench [-scenario echo|pipeline|idle|broadcast|churn] [-c 1000] [-size 64] [-p 16] [-d 10s]
//		[-ramp 0] [-rate 0] [-src ADDR,...] [-pid PID] [-loops 0] [-json] [-progress] [-url] URL
//	wskit version
//
// serve answers /echo (a default session echoing every message), /events
// (the same echo from Events callbacks), /raw (a raw session echoing every
// frame as it came), /hello (the Ktor guide's greeting), /chat (the Ktor
// guide's SharedFlow chat: every text goes to every member) and / (a page
// to try them from a browser). dial sends the lines typed on stdin as text
// messages and prints what it receives, like wscat.
//
// Help asked for with -h goes to stdout, for every command; usage errors go
// to stderr.
package main

import "github.com/wskit/wskit/internal/cli"

func main() { cli.Main(nil) }
