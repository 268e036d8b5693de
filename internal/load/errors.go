package load

// errKind sorts the failures of connections.
type errKind uint8

const (
	errConnect   errKind = iota // socket, bind or connect failed
	errHandshake                // the upgrade was refused or malformed
	errTimeout                  // a connect, upgrade, cycle or reply took longer than allowed
	errClosed                   // the server sent a close frame
	errEOF                      // the server ended the connection without a close frame
	errReset                    // the connection was reset
	errProtocol                 // a frame or message the client did not expect
	errIO                       // any other read or write failure
	numErrKinds
)

var errKindNames = [numErrKinds]string{"connect", "handshake", "timeout", "closed", "eof", "reset", "protocol", "io"}

func (k errKind) String() string { return errKindNames[k] }

// ErrorCount is how often one kind of error happened, with the first.
type ErrorCount struct {
	Count int64  `json:"count"`
	First string `json:"first"`
}

// errorTally counts errors by kind, keeping the first message of each.
type errorTally struct {
	count [numErrKinds]int64
	first [numErrKinds]string
}

func (t *errorTally) add(k errKind, msg func() string) {
	if t.count[k] == 0 {
		t.first[k] = msg()
	}
	t.count[k]++
}

func (t *errorTally) total() int64 {
	var n int64
	for _, c := range t.count {
		n += c
	}
	return n
}

// merge adds o's counts; the first message of a kind comes from t if it
// has one.
func (t *errorTally) merge(o *errorTally) {
	for k := range o.count {
		if t.count[k] == 0 {
			t.first[k] = o.first[k]
		}
		t.count[k] += o.count[k]
	}
}

// byKind returns the counts by kind name, omitting kinds that never
// happened.
func (t *errorTally) byKind() map[string]ErrorCount {
	m := map[string]ErrorCount{}
	for k, c := range t.count {
		if c > 0 {
			m[errKind(k).String()] = ErrorCount{Count: c, First: t.first[k]}
		}
	}
	return m
}
