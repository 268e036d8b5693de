module github.com/wskit/wskit

go 1.26.0

require (
	github.com/gobwas/pool v0.2.1
	github.com/gobwas/ws v1.5.0
	github.com/klauspost/compress v1.20.4
	golang.org/x/crypto v0.59.0
	golang.org/x/net v0.63.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
