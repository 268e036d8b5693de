package codec

// Role says which end of the connection the codec speaks for. It decides the
// masking rule: clients mask every frame they send, servers none.
type Role uint8

const (
	Server Role = iota // sends unmasked frames, requires masked ones
	Client             // masks every frame it sends
)

// String returns "server" or "client".
func (r Role) String() string {
	if r == Client {
		return "client"
	}
	return "server"
}

// Default limits, used where a size is left zero. A peer can make a
// connection hold this much memory, so they are far below Ktor's (unbounded
// frames): raise them per endpoint when messages really are larger.
const (
	DefaultMaxFrameSize   = 16 << 20
	DefaultMaxMessageSize = 16 << 20
)
